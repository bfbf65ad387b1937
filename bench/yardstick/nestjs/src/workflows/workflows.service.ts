import { Injectable } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import pg from 'pg';
import { appendChanges, type Change } from '../common/changes.js';
import type { Workflow, WorkflowCreated, WorkflowStatus } from '../common/contracts.js';
import { InjectPool, transaction } from '../common/database.module.js';
import { CreateWorkflowDto } from './create-workflow.dto.js';
import { TemplatesService } from './templates.service.js';

interface WorkflowRow {
  id: string;
  organization_id: string;
  building_id: string;
  name: string;
  status: WorkflowStatus;
  assignee_id: string | null;
  due_date: string | null;
  version: number;
  updated_at: Date;
  deleted_at: Date | null;
}

interface StepRow {
  id: string;
  workflow_id: string;
  title: string;
  position: number;
  done: boolean;
  value: string | null;
  completed_by: string | null;
  completed_at: Date | null;
  required: boolean;
  version: number;
  updated_at: Date;
}

const WORKFLOW_COLUMNS = `id, organization_id, building_id, name, status, assignee_id,
  to_char(due_date, 'YYYY-MM-DD') AS due_date, version, updated_at, deleted_at`;

function toWorkflow(row: WorkflowRow): Workflow {
  return {
    id: row.id,
    building_id: row.building_id,
    name: row.name,
    status: row.status,
    assignee_id: row.assignee_id,
    due_date: row.due_date,
    updated_at: row.updated_at.toISOString(),
    version: row.version,
  };
}

@Injectable()
export class WorkflowsService {
  constructor(
    @InjectPool() private readonly pool: pg.Pool,
    private readonly templates: TemplatesService,
  ) {}

  /** Create once per idempotency key (managers and admins); the same key answers the first. */
  async create(request: CreateWorkflowDto): Promise<WorkflowCreated> {
    if (request.caller.role !== 'admin' && request.caller.role !== 'manager') {
      throw new RpcException({ status: 403, message: 'requires the manager or admin role' });
    }
    const { workflow, created } = await transaction(this.pool, (client) =>
      this.createOnce(
        client,
        request.caller.organization_id,
        request.building_id,
        request.idempotency_key,
      ),
    );
    if (workflow.deleted_at !== null) {
      throw new RpcException({ status: 409, message: 'the workflow with this key was deleted' });
    }
    return { workflow: toWorkflow(workflow), created };
  }

  /** The building's default workflow unless it has (or had) one; true if created now. */
  async ensureDefault(organizationId: string, buildingId: string): Promise<boolean> {
    const { created } = await transaction(this.pool, (client) =>
      this.createOnce(client, organizationId, buildingId, buildingId),
    );
    return created;
  }

  private async createOnce(
    client: pg.PoolClient,
    organizationId: string,
    buildingId: string,
    idempotencyKey: string,
  ): Promise<{ workflow: WorkflowRow; created: boolean }> {
    const existing = await this.findByKey(client, organizationId, idempotencyKey);
    if (existing) {
      return { workflow: this.sameBuilding(existing, buildingId), created: false };
    }
    const template = await this.templates.defaultFor(client, organizationId);
    const inserted = await client.query<WorkflowRow>(
      `INSERT INTO workflows (organization_id, building_id, template_id, name, idempotency_key)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT ON CONSTRAINT uq_workflows_idempotency DO NOTHING
       RETURNING ${WORKFLOW_COLUMNS}`,
      [organizationId, buildingId, template.id, template.name, idempotencyKey],
    );
    if (inserted.rows.length === 0) {
      // A concurrent request with the same key committed first: answer its workflow.
      const winner = (await this.findByKey(client, organizationId, idempotencyKey))!;
      return { workflow: this.sameBuilding(winner, buildingId), created: false };
    }
    const workflow = inserted.rows[0];
    const { rows: steps } = await client.query<StepRow>(
      `INSERT INTO workflow_steps (workflow_id, title, position, required)
       SELECT $1, title, position, required FROM workflow_template_steps
       WHERE template_id = $2 AND deleted_at IS NULL ORDER BY position
       RETURNING id, workflow_id, title, position, done, value, completed_by, completed_at,
         required, version, updated_at`,
      [workflow.id, template.id],
    );
    const out = toWorkflow(workflow);
    const changes: Change[] = [
      {
        collection: 'workflows',
        id: workflow.id,
        organization_id: organizationId,
        op: 'upsert',
        data: { ...out },
        version: workflow.version,
        building_id: buildingId,
        occurred_at: out.updated_at,
      },
      ...steps.map(
        (step): Change => ({
          collection: 'workflow_steps',
          id: step.id,
          organization_id: organizationId,
          op: 'upsert',
          data: {
            id: step.id,
            workflow_id: step.workflow_id,
            title: step.title,
            position: step.position,
            done: step.done,
            value: step.value,
            completed_by: step.completed_by,
            completed_at: step.completed_at,
            required: step.required,
            version: step.version,
          },
          version: step.version,
          building_id: buildingId,
          occurred_at: step.updated_at.toISOString(),
        }),
      ),
    ];
    await appendChanges(client, changes);
    return { workflow, created: true };
  }

  private async findByKey(
    client: pg.PoolClient,
    organizationId: string,
    idempotencyKey: string,
  ): Promise<WorkflowRow | undefined> {
    const { rows } = await client.query<WorkflowRow>(
      `SELECT ${WORKFLOW_COLUMNS} FROM workflows
       WHERE organization_id = $1 AND idempotency_key = $2`,
      [organizationId, idempotencyKey],
    );
    return rows[0];
  }

  private sameBuilding(workflow: WorkflowRow, buildingId: string): WorkflowRow {
    if (workflow.building_id !== buildingId) {
      throw new RpcException({ status: 409, message: 'this key was used for another building' });
    }
    return workflow;
  }
}
