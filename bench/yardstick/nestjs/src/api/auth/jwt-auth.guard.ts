import { CanActivate, ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import type { Caller } from '../../common/contracts.js';
import { AccessTokenVerifier } from './access-token.verifier.js';
import { IS_PUBLIC } from './decorators.js';

export interface AuthenticatedRequest extends Request {
  caller: Caller;
}

/** Global guard: every route needs a valid bearer access token unless it is @Public(). */
@Injectable()
export class JwtAuthGuard implements CanActivate {
  constructor(
    private readonly verifier: AccessTokenVerifier,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) {
      return true;
    }
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const [scheme, token] = request.headers.authorization?.split(' ') ?? [];
    if (scheme !== 'Bearer' || !token) {
      throw new UnauthorizedException('a bearer access token is required');
    }
    try {
      request.caller = await this.verifier.verify(token);
    } catch {
      throw new UnauthorizedException('invalid access token');
    }
    return true;
  }
}
