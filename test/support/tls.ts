import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Files of a test CA and a server certificate, and the settings that turn TLS on at a test server. */
export interface TestCertificates {
  /** The folder holding them: the caller removes it. */
  readonly dir: string;
  /** The CA's certificate, for `sslrootcert`. */
  readonly ca: string;
  readonly settings: Record<string, string>;
}

/**
 * A CA and a server certificate for localhost (not for 127.0.0.1), made
 * with openssl; the key readable by the server only.
 */
export async function makeCertificates(name: string): Promise<TestCertificates> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `branchline-${name}-tls-`));
  await chmod(dir, 0o755);
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', `/CN=branchline ${name} test CA`);
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  await writeFile(f('san.ext'), 'subjectAltName=DNS:localhost\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('san.ext'));
  await chmod(f('server.key'), 0o600);
  // As root the server runs as `postgres`, which must own its key.
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    await chown(f('server.key'), uid, gid);
  }
  return { dir, ca: f('ca.pem'), settings: { ssl: 'on', ssl_cert_file: f('server.pem'), ssl_key_file: f('server.key') } };
}
