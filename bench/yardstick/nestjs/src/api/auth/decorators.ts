import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Caller, Role } from '../../common/contracts.js';
import type { AuthenticatedRequest } from './jwt-auth.guard.js';

export const IS_PUBLIC = 'isPublic';
export const ROLES_KEY = 'roles';

/** No access token needed. */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/** Only callers holding one of `roles`. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);

/** The verified caller of this request. */
export const CurrentCaller = createParamDecorator(
  (_: unknown, context: ExecutionContext): Caller =>
    context.switchToHttp().getRequest<AuthenticatedRequest>().caller,
);
