import { Type } from 'class-transformer';
import { IsIn, IsString, IsUUID, Length, ValidateNested } from 'class-validator';
import { ROLES, type Role } from '../common/contracts.js';

export class CallerDto {
  @IsUUID()
  user_id: string;

  @IsUUID()
  organization_id: string;

  @IsIn(ROLES)
  role: Role;

  @IsUUID()
  session_id: string;
}

export class CreateWorkflowDto {
  @ValidateNested()
  @Type(() => CallerDto)
  caller: CallerDto;

  @IsUUID()
  building_id: string;

  @IsString()
  @Length(1, 200)
  idempotency_key: string;
}
