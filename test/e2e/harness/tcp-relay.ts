import { connect } from 'node:net';

/**
 * QEMU starts this for each guest connection to a guestfwd address (`guestfwd=...-cmd:`),
 * with the connection on stdin/stdout; it joins it to 127.0.0.1:PORT on the host and never
 * anywhere else.
 */
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: tcp-relay.ts PORT\n');
  process.exit(2);
}
const socket = connect({ host: '127.0.0.1', port });
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', () => process.exit(1));
socket.on('close', () => process.exit(0));
process.stdin.on('end', () => socket.end());
