import {
  ConflictException,
  Injectable,
  NotFoundException,
  UnauthorizedException,
} from '@nestjs/common';
import pg from 'pg';
import { appendChanges } from '../../common/changes.js';
import type { Caller } from '../../common/contracts.js';
import { InjectPool, isUniqueViolation, transaction } from '../../common/database.module.js';
import {
  toBuildingResponse,
  type BuildingCreatedResponse,
  type BuildingResponse,
  type BuildingRow,
} from './building.js';
import { CreateBuildingDto } from './dto/create-building.dto.js';
import { WorkflowsClient } from './workflows.client.js';

const COLUMNS = `id, organization_id, name, address, city, country, latitude, longitude, floors,
  notes, version, created_at, updated_at`;

@Injectable()
export class BuildingsService {
  constructor(
    @InjectPool() private readonly pool: pg.Pool,
    private readonly workflows: WorkflowsClient,
  ) {}

  /** Commit the building and its change, then ask for its default workflow. */
  async create(caller: Caller, dto: CreateBuildingDto): Promise<BuildingCreatedResponse> {
    const building = await transaction(this.pool, async (client) => {
      await this.requireOrganization(client, caller);
      let row: BuildingRow;
      try {
        const result = await client.query<BuildingRow>(
          `INSERT INTO buildings (id, organization_id, name, address, city, country, latitude,
             longitude, floors, notes)
           VALUES (COALESCE($1::uuid, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10)
           RETURNING ${COLUMNS}`,
          [
            dto.id ?? null,
            caller.organization_id,
            dto.name,
            dto.address ?? null,
            dto.city ?? null,
            dto.country ?? null,
            dto.latitude ?? null,
            dto.longitude ?? null,
            dto.floors ?? null,
            dto.notes ?? null,
          ],
        );
        row = result.rows[0];
      } catch (error) {
        if (isUniqueViolation(error)) {
          throw new ConflictException('a building with this id already exists');
        }
        throw error;
      }
      const out = toBuildingResponse(row);
      const { created_at: _, ...data } = out;
      await appendChanges(client, [
        {
          collection: 'buildings',
          id: row.id,
          organization_id: caller.organization_id,
          op: 'upsert',
          data,
          version: row.version,
          building_id: row.id,
          occurred_at: new Date().toISOString(),
        },
      ]);
      return out;
    });
    const workflow = await this.workflows.createDefault(caller, building.id);
    return { ...building, workflow, workflow_status: workflow ? 'created' : 'pending' };
  }

  /** A building of the caller's organization (technicians: only those assigned to them). */
  async findOne(caller: Caller, id: string): Promise<BuildingResponse> {
    await this.requireOrganization(this.pool, caller);
    const assigned =
      caller.role === 'technician'
        ? `AND EXISTS (SELECT 1 FROM building_assignments a
             WHERE a.building_id = b.id AND a.user_id = $3 AND a.deleted_at IS NULL)`
        : '';
    const params =
      caller.role === 'technician'
        ? [id, caller.organization_id, caller.user_id]
        : [id, caller.organization_id];
    const { rows } = await this.pool.query<BuildingRow>(
      `SELECT ${COLUMNS} FROM buildings b
       WHERE b.id = $1 AND b.organization_id = $2 AND b.deleted_at IS NULL ${assigned}`,
      params,
    );
    if (rows.length === 0) {
      throw new NotFoundException('no such building');
    }
    return toBuildingResponse(rows[0]);
  }

  private async requireOrganization(db: pg.Pool | pg.PoolClient, caller: Caller): Promise<void> {
    const { rowCount } = await db.query(
      'SELECT 1 FROM organizations WHERE id = $1 AND deleted_at IS NULL',
      [caller.organization_id],
    );
    if (!rowCount) {
      throw new UnauthorizedException('the organization no longer exists');
    }
  }
}
