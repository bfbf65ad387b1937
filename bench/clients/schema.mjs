// The buildings collection both servers serve (fieldsync's fields, RxDB schema version 0).
const text = { type: ['string', 'null'] };
const number = { type: ['number', 'null'] };
const integer = { type: ['integer', 'null'] };

export const buildingsSchema = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 36 },
    name: { type: 'string' },
    address: text,
    city: text,
    country: text,
    latitude: number,
    longitude: number,
    floors: integer,
    notes: text,
    updated_at: text,
    version: integer,
  },
  required: ['id', 'name'],
};

// A building as a field app creates it.
export function newBuilding(id, number) {
  return {
    id,
    name: `Building ${number}`,
    address: `${number} Bench Street`,
    city: 'Lyon',
    country: 'FR',
    latitude: 45.764043,
    longitude: 4.835659,
    floors: number % 40,
    notes: null,
  };
}
