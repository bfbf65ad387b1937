import { OUTBOX_DDL } from '../common/changes.js';

export const API_SCHEMA = `
CREATE TABLE IF NOT EXISTS organizations (
  id uuid PRIMARY KEY,
  name varchar(200) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE TABLE IF NOT EXISTS buildings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL REFERENCES organizations (id),
  name varchar(200) NOT NULL,
  address varchar(500),
  city varchar(120),
  country varchar(2),
  latitude numeric(9, 6) CHECK (latitude BETWEEN -90 AND 90),
  longitude numeric(9, 6) CHECK (longitude BETWEEN -180 AND 180),
  floors integer CHECK (floors BETWEEN 0 AND 300),
  notes text,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS ix_buildings_organization_id ON buildings (organization_id, created_at);
CREATE TABLE IF NOT EXISTS building_assignments (
  building_id uuid NOT NULL REFERENCES buildings (id),
  user_id uuid NOT NULL,
  deleted_at timestamptz,
  PRIMARY KEY (building_id, user_id)
);
${OUTBOX_DDL}
`;
