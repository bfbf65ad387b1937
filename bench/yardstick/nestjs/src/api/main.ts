import 'reflect-metadata';
import { ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { config } from '../common/config.js';
import { ApiModule } from './api.module.js';

const app = await NestFactory.create(ApiModule, { logger: ['error', 'warn'] });
app.useGlobalPipes(
  new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }),
);
app.enableShutdownHooks();
await app.listen(config.httpPort(), '127.0.0.1');
console.log(`yardstick api ready on port ${config.httpPort()}`);
