import { Body, Controller, Get, Param, ParseUUIDPipe, Post, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { Caller } from '../../common/contracts.js';
import { CurrentCaller, Roles } from '../auth/decorators.js';
import type { BuildingCreatedResponse, BuildingResponse } from './building.js';
import { BuildingsService } from './buildings.service.js';
import { CreateBuildingDto } from './dto/create-building.dto.js';

@Controller('api/v1/buildings')
export class BuildingsController {
  constructor(private readonly buildings: BuildingsService) {}

  /** Add a building (manager or admin), then its default workflow; 201 either way. */
  @Post()
  @Roles('admin', 'manager')
  async create(
    @Body() dto: CreateBuildingDto,
    @CurrentCaller() caller: Caller,
    @Res({ passthrough: true }) response: Response,
  ): Promise<BuildingCreatedResponse> {
    const created = await this.buildings.create(caller, dto);
    response.location(`/api/v1/buildings/${created.id}`);
    return created;
  }

  /** One building (404 if it is not yours to see). */
  @Get(':id')
  findOne(
    @Param('id', ParseUUIDPipe) id: string,
    @CurrentCaller() caller: Caller,
  ): Promise<BuildingResponse> {
    return this.buildings.findOne(caller, id);
  }
}
