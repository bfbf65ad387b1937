import { Controller, UsePipes, ValidationPipe } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { CREATE_WORKFLOW, type WorkflowCreated } from '../common/contracts.js';
import { CreateWorkflowDto } from './create-workflow.dto.js';
import { WorkflowsService } from './workflows.service.js';

@Controller()
@UsePipes(
  new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => new RpcException({ status: 422, errors }),
  }),
)
export class WorkflowsController {
  constructor(private readonly workflows: WorkflowsService) {}

  @MessagePattern(CREATE_WORKFLOW)
  create(@Payload() request: CreateWorkflowDto): Promise<WorkflowCreated> {
    return this.workflows.create(request);
  }
}
