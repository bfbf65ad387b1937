/** What the api and the workflows microservice say to each other over NATS. */

export const CREATE_WORKFLOW = 'yardstick.workflows.create';

export type Role = 'admin' | 'manager' | 'technician';
export const ROLES: Role[] = ['admin', 'manager', 'technician'];

export interface Caller {
  user_id: string;
  organization_id: string;
  role: Role;
  session_id: string;
}

export interface CreateWorkflowRequest {
  caller: Caller;
  building_id: string;
  idempotency_key: string;
}

export type WorkflowStatus = 'open' | 'in_progress' | 'done' | 'cancelled';

export interface Workflow {
  id: string;
  building_id: string;
  name: string;
  status: WorkflowStatus;
  assignee_id: string | null;
  due_date: string | null;
  updated_at: string;
  version: number;
}

export interface WorkflowCreated {
  workflow: Workflow;
  created: boolean;
}
