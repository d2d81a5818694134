// Writes a folder as a gzip-compressed initramfs (newc cpio), for scripts/linux-guest.sh, which cannot
// count on `cpio` being installed. Plain Node, no dependencies, no root needed.
//
//   node scripts/make-initramfs.mjs DIR OUT
//
// Every file, folder and symlink under DIR goes in, owned by root, with its permission bits and
// mtime 0 (the same tree always gives the same bytes). The archive also carries /dev/console
// (character device 5:1), which the kernel opens for /init's stdin and stdout before anything can
// mount devtmpfs; making that node on disk would need root.
//
// newc format (the kernel's Documentation/driver-api/early-userspace/buffer-format.rst), per entry:
//   "070701", then 13 fields of 8 hex digits: ino mode uid gid nlink mtime filesize devmajor devminor
//   rdevmajor rdevminor namesize check; the name with its NUL, padded to 4 bytes (counting the
//   110-byte header); the data (a symlink's data is its target), padded to 4 bytes.
// The archive ends with an entry named "TRAILER!!!".
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const [dir, out] = process.argv.slice(2);
if (dir === undefined || out === undefined) {
  console.error('usage: node scripts/make-initramfs.mjs DIR OUT');
  process.exit(2);
}

const chunks = [];
let ino = 1;

/** Appends one entry; `data` is empty for folders and devices. */
function entry(name, mode, data = Buffer.alloc(0), rdev = [0, 0]) {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino++, mode, 0, 0, (mode & S_IFDIR) === S_IFDIR ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map((n) => n.toString(16).padStart(8, '0')).join('')}`);
  chunks.push(header, nameBytes, pad(header.length + nameBytes.length));
  chunks.push(data, pad(data.length));
}

function pad(length) {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/** Adds everything under `rel` (relative to DIR), parents before children, in a fixed order. */
function walk(rel) {
  for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
    const child = rel === '' ? name : `${rel}/${name}`;
    const full = path.join(dir, child);
    const st = fs.lstatSync(full);
    const perm = st.mode & 0o7777;
    if (st.isDirectory()) {
      entry(child, S_IFDIR | perm);
      walk(child);
    } else if (st.isSymbolicLink()) {
      entry(child, S_IFLNK | 0o777, Buffer.from(fs.readlinkSync(full)));
    } else if (st.isFile()) {
      entry(child, S_IFREG | perm, fs.readFileSync(full));
    } else {
      throw new Error(`make-initramfs: ${full} is neither a file, a folder nor a symlink`);
    }
  }
}

// A dev/ in DIR is added again by walk(); the kernel's unpacker takes a folder twice.
entry('dev', S_IFDIR | 0o755);
entry('dev/console', S_IFCHR | 0o600, undefined, [5, 1]);
walk('');
entry('TRAILER!!!', 0);

fs.writeFileSync(out, zlib.gzipSync(Buffer.concat(chunks), { level: 9 }));
