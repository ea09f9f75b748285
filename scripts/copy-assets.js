// The Redis store loads its Lua scripts from files next to its compiled code.
import { cpSync } from 'node:fs';

cpSync('src/store/redis/lua', 'dist/store/redis/lua', { recursive: true });
