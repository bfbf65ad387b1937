import { Injectable, OnModuleInit } from '@nestjs/common';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  importSPKI,
  jwtVerify,
  type JWTVerifyGetKey,
} from 'jose';
import { readFile } from 'node:fs/promises';
import { config } from '../../common/config.js';
import { ROLES, type Caller, type Role } from '../../common/contracts.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REQUIRED_CLAIMS = ['exp', 'nbf', 'iat', 'iss', 'aud', 'sub', 'org', 'role', 'sid', 'jti'];

export class InvalidAccessToken extends Error {}

/**
 * Verifies fieldsync's access tokens with its Ed25519 public key: EdDSA only, `typ`
 * at+jwt, a known `kid` (the key's RFC 7638 thumbprint), issuer, audience and the
 * time claims, all required.
 */
@Injectable()
export class AccessTokenVerifier implements OnModuleInit {
  private keys: JWTVerifyGetKey;

  async onModuleInit(): Promise<void> {
    const pem = await readFile(config.jwtPublicKeyFile(), 'utf8');
    const jwk = await exportJWK(await importSPKI(pem, 'EdDSA', { extractable: true }));
    jwk.kid = await calculateJwkThumbprint(jwk);
    jwk.alg = 'EdDSA';
    this.keys = createLocalJWKSet({ keys: [jwk] });
  }

  async verify(token: string): Promise<Caller> {
    const { payload } = await jwtVerify(token, this.keys, {
      algorithms: ['EdDSA'],
      typ: 'at+jwt',
      issuer: config.jwtIssuer(),
      audience: config.jwtAudience(),
      requiredClaims: REQUIRED_CLAIMS,
      clockTolerance: 5,
    });
    const { sub, org, role, sid } = payload;
    if (
      !isUuid(sub) ||
      !isUuid(org) ||
      !isUuid(sid) ||
      typeof role !== 'string' ||
      !ROLES.includes(role as Role)
    ) {
      throw new InvalidAccessToken('invalid access token claims');
    }
    return { user_id: sub, organization_id: org, role: role as Role, session_id: sid };
  }
}

function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}
