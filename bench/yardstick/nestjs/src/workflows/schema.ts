import { OUTBOX_DDL } from '../common/changes.js';

export const WORKFLOWS_SCHEMA = `
CREATE TABLE IF NOT EXISTS workflow_templates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL,
  name varchar(200) NOT NULL,
  is_default boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_workflow_templates_default
  ON workflow_templates (organization_id) WHERE is_default AND deleted_at IS NULL;
CREATE TABLE IF NOT EXISTS workflow_template_steps (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  template_id uuid NOT NULL REFERENCES workflow_templates (id),
  position integer NOT NULL,
  title varchar(200) NOT NULL,
  required boolean NOT NULL,
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS ix_workflow_template_steps_template
  ON workflow_template_steps (template_id, position);
CREATE TABLE IF NOT EXISTS workflows (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL,
  building_id uuid NOT NULL,
  template_id uuid REFERENCES workflow_templates (id),
  name varchar(200) NOT NULL,
  status varchar(20) NOT NULL DEFAULT 'open',
  assignee_id uuid,
  due_date date,
  idempotency_key varchar(200) NOT NULL,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  CONSTRAINT uq_workflows_idempotency UNIQUE (organization_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS ix_workflows_building ON workflows (organization_id, building_id);
CREATE TABLE IF NOT EXISTS workflow_steps (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES workflows (id),
  title varchar(200) NOT NULL,
  position integer NOT NULL,
  required boolean NOT NULL,
  done boolean NOT NULL DEFAULT false,
  value text,
  completed_by uuid,
  completed_at timestamptz,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS ix_workflow_steps_workflow ON workflow_steps (workflow_id);
${OUTBOX_DDL}
`;
