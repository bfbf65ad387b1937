import { Module } from '@nestjs/common';
import { config } from '../common/config.js';
import { DatabaseModule } from '../common/database.module.js';
import { NatsModule } from '../common/nats.module.js';
import { OUTBOX_RELAY_NAME, OutboxRelay } from '../common/outbox.relay.js';
import { BuildingChangesConsumer } from './building-changes.consumer.js';
import { WORKFLOWS_SCHEMA } from './schema.js';
import { TemplatesService } from './templates.service.js';
import { WorkflowsController } from './workflows.controller.js';
import { WorkflowsService } from './workflows.service.js';

@Module({
  imports: [
    DatabaseModule.forRoot({
      url: config.workflowsDatabaseUrl(),
      schema: WORKFLOWS_SCHEMA,
      poolSize: config.dbPoolSize(),
      applicationName: 'yardstick-workflows',
    }),
    NatsModule.forRoot(config.natsUrl(), 'yardstick-workflows-outbox'),
  ],
  controllers: [WorkflowsController],
  providers: [
    TemplatesService,
    WorkflowsService,
    BuildingChangesConsumer,
    { provide: OUTBOX_RELAY_NAME, useValue: 'workflows' },
    OutboxRelay,
  ],
})
export class WorkflowsModule {}
