// Copies the repository's proto/auth/v1/auth.proto into the package (`npm pack`/`npm publish`):
// installed from the repository (`npm install ./clients/node`) the package reads it in place.
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
mkdirSync(join(here, 'proto/auth/v1'), { recursive: true });
cpSync(join(here, '../../proto/auth/v1/auth.proto'), join(here, 'proto/auth/v1/auth.proto'));
