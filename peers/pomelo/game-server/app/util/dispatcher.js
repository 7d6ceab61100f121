'use strict';

var crc = require('crc');

// dispatch picks the server for key as stock pomelo does:
// abs(crc32(key)) modulo the number of servers.
exports.dispatch = function (key, servers) {
  return servers[Math.abs(crc.crc32(key)) % servers.length];
};
