// The Node host's warehouse file, kept as the Rust host keeps the files it
// writes (host/src/files.rs): read without following a link, and only if it
// is a regular file of this user that others cannot write; written to a
// temporary file created exclusively (O_EXCL, O_NOFOLLOW, mode 0600), synced,
// renamed over the warehouse (a rename replaces a planted link, never writes
// through it), and the directory synced, so a crash keeps the last
// checkpoint whole.
import {
  closeSync, constants, fstatSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

/// The warehouse's contents, or `null` if there is none yet. Throws with
/// one line naming what is wrong with the file.
export function readPrivate(file) {
  let fd;
  try {
    fd = openSync(file, O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    if (e.code === 'ELOOP') throw new Error(`${file} is a symbolic link; the warehouse file must be a regular file`);
    throw new Error(`${file}: ${e.message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (process.getuid && st.uid !== process.getuid()) {
      throw new Error(`${file} belongs to another user (uid ${st.uid}); the warehouse file must be yours`);
    }
    if (st.mode & 0o022) {
      throw new Error(`${file} may be written by others (mode ${(st.mode & 0o777).toString(8)}); the warehouse file must not be`);
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/// Replaces `file` with `text`, durably and privately.
export function writePrivate(file, text) {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    const bytes = Buffer.from(text, 'utf8');
    for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  const d = openSync(dir, O_RDONLY);
  try { fsyncSync(d); } finally { closeSync(d); }
}
