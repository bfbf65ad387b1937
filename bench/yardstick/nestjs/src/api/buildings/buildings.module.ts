import { Module } from '@nestjs/common';
import { ClientsModule, Transport } from '@nestjs/microservices';
import { config } from '../../common/config.js';
import { BuildingsController } from './buildings.controller.js';
import { BuildingsService } from './buildings.service.js';
import { WORKFLOWS_SERVICE, WorkflowsClient } from './workflows.client.js';

@Module({
  imports: [
    ClientsModule.registerAsync([
      {
        name: WORKFLOWS_SERVICE,
        useFactory: () => ({
          transport: Transport.NATS,
          options: { servers: [config.natsUrl()], name: 'yardstick-api' },
        }),
      },
    ]),
  ],
  controllers: [BuildingsController],
  providers: [BuildingsService, WorkflowsClient],
})
export class BuildingsModule {}
