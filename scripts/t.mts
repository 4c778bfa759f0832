import { EmbeddedServer } from '../src/embedded/pg-server.js';
const s = await EmbeddedServer.start({ name: 'x', onLog: (l) => process.stdout.write('LOG ' + l) });
await s.destroy();
