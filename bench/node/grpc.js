'use strict';
// The echo backend's client for the Fastify peer: the same echo.proto the Rust peers
// and the gateway are built from.
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const root = path.join(__dirname, '..', '..');
const def = protoLoader.loadSync('echo/v1/echo.proto', {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  includeDirs: [path.join(root, 'bench', 'edge-overhead', 'proto'), path.join(root, 'proto', 'vendor')],
});
const Echo = grpc.loadPackageDefinition(def).echo.v1.Echo;
// One shared client (= one channel, one HTTP/2 connection), like the Rust peers.
const client = new Echo(process.env.UPSTREAM || '127.0.0.1:50061', grpc.credentials.createInsecure());
function unaryEcho(req) {
  return new Promise((resolve, reject) =>
    client.UnaryEcho(req, (err, res) => (err ? reject(err) : resolve(res))));
}
module.exports = { unaryEcho };
