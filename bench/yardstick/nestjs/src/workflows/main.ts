import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { config } from '../common/config.js';
import { WorkflowsModule } from './workflows.module.js';

const app = await NestFactory.createMicroservice<MicroserviceOptions>(WorkflowsModule, {
  transport: Transport.NATS,
  options: {
    servers: [config.natsUrl()],
    queue: 'yardstick-workflows',
    name: 'yardstick-workflows',
  },
  logger: ['error', 'warn'],
});
app.enableShutdownHooks();
await app.listen();
console.log('yardstick workflows ready');
