/** A building row, and the shapes the API answers with (the same fields as fieldsync's). */

export interface BuildingRow {
  id: string;
  organization_id: string;
  name: string;
  address: string | null;
  city: string | null;
  country: string | null;
  latitude: string | null; // numeric arrives as a string
  longitude: string | null;
  floors: number | null;
  notes: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface BuildingResponse {
  id: string;
  name: string;
  address: string | null;
  city: string | null;
  country: string | null;
  latitude: number | null;
  longitude: number | null;
  floors: number | null;
  notes: string | null;
  created_at: Date;
  updated_at: Date;
  version: number;
}

export interface WorkflowSummary {
  id: string;
  name: string;
  status: string;
  version: number;
}

export interface BuildingCreatedResponse extends BuildingResponse {
  workflow: WorkflowSummary | null;
  workflow_status: 'created' | 'pending';
}

export function toBuildingResponse(row: BuildingRow): BuildingResponse {
  return {
    id: row.id,
    name: row.name,
    address: row.address,
    city: row.city,
    country: row.country,
    latitude: row.latitude === null ? null : Number(row.latitude),
    longitude: row.longitude === null ? null : Number(row.longitude),
    floors: row.floors,
    notes: row.notes,
    created_at: row.created_at,
    updated_at: row.updated_at,
    version: row.version,
  };
}
