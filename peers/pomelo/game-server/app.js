// The pomelo 2.2.7 chat application, written to behave as the stock
// chatofpomelo-websocket demo does: a gate that hands each user a connector
// (crc32 of the name), connectors holding the websockets (heartbeat 3 s,
// route dictionary, protobuf pushes), chat servers owning rooms (crc32 of
// the room id). Run it with `node app.js env=development` from a folder whose
// config/ has servers.json and master.json (chatbench writes them).
'use strict';

var pomelo = require('pomelo');
var routeUtil = require('./app/util/routeUtil');

var app = pomelo.createApp();
app.set('name', 'chatbench-pomelo-chat');

app.configure('production|development', 'connector', function () {
  app.set('connectorConfig', {
    connector: pomelo.connectors.hybridconnector,
    heartbeat: 3,
    useDict: true,
    useProtobuf: true
  });
});

app.configure('production|development', 'gate', function () {
  app.set('connectorConfig', {
    connector: pomelo.connectors.hybridconnector,
    useProtobuf: true
  });
});

app.configure('production|development', function () {
  app.route('chat', routeUtil.chat);
  app.filter(pomelo.timeout());
});

// Every server but the master tells whoever started the cluster that the
// whole cluster is up (the master's watchdog sends startOver once every
// server in servers.json has registered). The master relays its children's
// stdout as its own.
app.event.on('start_all', function () {
  console.log('READY ' + app.getServerId());
});

app.start();

process.on('uncaughtException', function (err) {
  console.error(' Caught exception: ' + err.stack);
});
