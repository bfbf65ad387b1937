import {
  IsInt,
  IsISO31661Alpha2,
  IsNumber,
  IsOptional,
  IsString,
  IsUUID,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';

// PostgreSQL text cannot hold NUL: refuse it here (a 400) rather than at the database.
const NO_NUL = /^[^\u0000]*$/;
const COORDINATE = { maxDecimalPlaces: 6, allowNaN: false, allowInfinity: false };

/** A new building; `id` may be chosen by the client (a UUID it generated offline). */
export class CreateBuildingDto {
  @IsOptional()
  @IsUUID()
  id?: string | null;

  @IsString()
  @Length(1, 200)
  @Matches(NO_NUL)
  name: string;

  @IsOptional()
  @IsString()
  @MaxLength(500)
  @Matches(NO_NUL)
  address?: string | null;

  @IsOptional()
  @IsString()
  @Length(1, 120)
  @Matches(NO_NUL)
  city?: string | null;

  @IsOptional()
  @IsISO31661Alpha2()
  country?: string | null;

  @IsOptional()
  @IsNumber(COORDINATE)
  @Min(-90)
  @Max(90)
  latitude?: number | null;

  @IsOptional()
  @IsNumber(COORDINATE)
  @Min(-180)
  @Max(180)
  longitude?: number | null;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(300)
  floors?: number | null;

  @IsOptional()
  @IsString()
  @MaxLength(5000)
  @Matches(NO_NUL)
  notes?: string | null;
}
