import { Module } from '@nestjs/common';
import { config } from '../common/config.js';
import { DatabaseModule } from '../common/database.module.js';
import { NatsModule } from '../common/nats.module.js';
import { OUTBOX_RELAY_NAME, OutboxRelay } from '../common/outbox.relay.js';
import { AuthModule } from './auth/auth.module.js';
import { BuildingsModule } from './buildings/buildings.module.js';
import { API_SCHEMA } from './schema.js';

@Module({
  imports: [
    DatabaseModule.forRoot({
      url: config.apiDatabaseUrl(),
      schema: API_SCHEMA,
      poolSize: config.dbPoolSize(),
      applicationName: 'yardstick-api',
    }),
    NatsModule.forRoot(config.natsUrl(), 'yardstick-api-outbox'),
    AuthModule,
    BuildingsModule,
  ],
  providers: [{ provide: OUTBOX_RELAY_NAME, useValue: 'api' }, OutboxRelay],
})
export class ApiModule {}
