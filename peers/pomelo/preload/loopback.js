// Preloaded into every node process of a chatbench-started pomelo cluster
// (NODE_OPTIONS="-r <this file>"; pomelo's master passes its environment to
// the servers it spawns). It changes sockets, not pomelo:
//   - a listen() without a host binds CHATBENCH_POMELO_HOST (127.0.0.1)
//     instead of every interface;
//   - unless CHATBENCH_POMELO_NAGLE=1, every TCP socket gets TCP_NODELAY
//     (stock pomelo's RPC links leave Nagle on, which adds about 40 ms a hop
//     under light load);
//   - with CHATBENCH_POMELO_ORPHAN_EXIT=1 a process exits once its parent
//     is gone, so no server outlives the chatbench that started the cluster.
'use strict';

var net = require('net');

var host = process.env.CHATBENCH_POMELO_HOST || '127.0.0.1';

function isPort(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^[0-9]+$/.test(v));
}

var listen = net.Server.prototype.listen;
net.Server.prototype.listen = function () {
  var args = Array.prototype.slice.call(arguments);
  if (isPort(args[0]) && typeof args[1] !== 'string') {
    args.splice(1, 0, host);
  } else if (args[0] !== null && typeof args[0] === 'object' && !args[0]._handle &&
             args[0].port !== undefined && args[0].host === undefined && args[0].path === undefined) {
    args[0] = Object.assign({}, args[0], { host: host });
  }
  return listen.apply(this, args);
};

if (process.env.CHATBENCH_POMELO_NAGLE !== '1') {
  var emit = net.Server.prototype.emit;
  net.Server.prototype.emit = function (event, socket) {
    if (event === 'connection' && socket && typeof socket.setNoDelay === 'function') {
      socket.setNoDelay(true);
    }
    return emit.apply(this, arguments);
  };
  var connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function () {
    this.setNoDelay(true);
    return connect.apply(this, arguments);
  };
}

if (process.env.CHATBENCH_POMELO_ORPHAN_EXIT === '1') {
  var parent = process.ppid;
  setInterval(function () {
    if (process.ppid !== parent) {
      process.exit(0);
    }
  }, 500).unref();
}
