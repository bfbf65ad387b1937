import {
  DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  OnApplicationShutdown,
} from '@nestjs/common';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** A plain NATS connection for JetStream work (the relay and the consumer). */
export const NATS_CONNECTION = Symbol('NATS_CONNECTION');
export const InjectNats = () => Inject(NATS_CONNECTION);

@Injectable()
class NatsCloser implements OnApplicationShutdown {
  constructor(@InjectNats() private readonly connection: NatsConnection) {}

  async onApplicationShutdown(): Promise<void> {
    await this.connection.drain();
  }
}

@Global()
@Module({})
export class NatsModule {
  static forRoot(servers: string, name: string): DynamicModule {
    return {
      module: NatsModule,
      providers: [
        {
          provide: NATS_CONNECTION,
          useFactory: (): Promise<NatsConnection> => connect({ servers, name }),
        },
        NatsCloser,
      ],
      exports: [NATS_CONNECTION],
    };
  }
}
