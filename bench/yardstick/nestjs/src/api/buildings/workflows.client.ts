import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ClientProxy } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';
import {
  CREATE_WORKFLOW,
  type Caller,
  type CreateWorkflowRequest,
  type WorkflowCreated,
} from '../../common/contracts.js';
import type { WorkflowSummary } from './building.js';

export const WORKFLOWS_SERVICE = 'WORKFLOWS_SERVICE';
const CREATE_TIMEOUT_MS = 2000;

/** The api's side of the workflows microservice (NATS request-reply). */
@Injectable()
export class WorkflowsClient implements OnApplicationBootstrap {
  private readonly logger = new Logger(WorkflowsClient.name);

  constructor(@Inject(WORKFLOWS_SERVICE) private readonly client: ClientProxy) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.client.connect();
  }

  /** The building's default workflow, or null when the service cannot answer now. */
  async createDefault(caller: Caller, buildingId: string): Promise<WorkflowSummary | null> {
    const request: CreateWorkflowRequest = {
      caller,
      building_id: buildingId,
      idempotency_key: buildingId,
    };
    try {
      const { workflow } = await firstValueFrom(
        this.client
          .send<WorkflowCreated, CreateWorkflowRequest>(CREATE_WORKFLOW, request)
          .pipe(timeout(CREATE_TIMEOUT_MS)),
      );
      return {
        id: workflow.id,
        name: workflow.name,
        status: workflow.status,
        version: workflow.version,
      };
    } catch (error) {
      this.logger.warn(`default workflow pending for ${buildingId}: ${String(error)}`);
      return null;
    }
  }
}
