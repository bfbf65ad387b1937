import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';

export const DEFAULT_TEMPLATE_NAME = 'Initial inspection';
const DEFAULT_STEPS: [title: string, required: boolean][] = [
  ['Check site access and safety', true],
  ['Inspect the structure and exterior', true],
  ['Inspect utilities: electrical, water, heating', true],
  ['Photograph defects', false],
  ['Record findings and recommendations', true],
];

export interface Template {
  id: string;
  name: string;
}

/** The default template every organization starts with, created on its first use. */
@Injectable()
export class TemplatesService {
  async defaultFor(client: PoolClient, organizationId: string): Promise<Template> {
    const found = await this.findDefault(client, organizationId);
    if (found) {
      return found;
    }
    const { rows } = await client.query<Template>(
      `INSERT INTO workflow_templates (organization_id, name, is_default) VALUES ($1, $2, true)
       ON CONFLICT (organization_id) WHERE is_default AND deleted_at IS NULL DO NOTHING
       RETURNING id, name`,
      [organizationId, DEFAULT_TEMPLATE_NAME],
    );
    if (rows.length === 0) {
      // Another transaction created it first: use theirs.
      return (await this.findDefault(client, organizationId))!;
    }
    await client.query(
      `INSERT INTO workflow_template_steps (template_id, position, title, required)
       SELECT $1, position - 1, title, required
       FROM unnest($2::text[], $3::boolean[]) WITH ORDINALITY AS s(title, required, position)`,
      [
        rows[0].id,
        DEFAULT_STEPS.map(([title]) => title),
        DEFAULT_STEPS.map(([, required]) => required),
      ],
    );
    return rows[0];
  }

  private async findDefault(
    client: PoolClient,
    organizationId: string,
  ): Promise<Template | undefined> {
    const { rows } = await client.query<Template>(
      `SELECT id, name FROM workflow_templates
       WHERE organization_id = $1 AND is_default AND deleted_at IS NULL`,
      [organizationId],
    );
    return rows[0];
  }
}
