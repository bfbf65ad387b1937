import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Role } from '../../common/contracts.js';
import { ROLES_KEY } from './decorators.js';
import type { AuthenticatedRequest } from './jwt-auth.guard.js';

@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!roles) {
      return true;
    }
    const { caller } = context.switchToHttp().getRequest<AuthenticatedRequest>();
    if (!caller || !roles.includes(caller.role)) {
      throw new ForbiddenException(`requires the ${roles.join(' or ')} role`);
    }
    return true;
  }
}
