'use strict';

var dispatcher = require('../../../util/dispatcher');

function GateHandler(app) {
  this.app = app;
}

// queryEntry answers the connector for msg.uid: {code:200, host, port}, or
// {code:500} without a uid or without a connector.
GateHandler.prototype.queryEntry = function (msg, session, next) {
  if (!msg.uid) {
    next(null, { code: 500 });
    return;
  }
  var connectors = this.app.getServersByType('connector');
  if (!connectors || connectors.length === 0) {
    next(null, { code: 500 });
    return;
  }
  var c = dispatcher.dispatch(msg.uid, connectors);
  next(null, { code: 200, host: c.host, port: c.clientPort });
};

module.exports = function (app) {
  return new GateHandler(app);
};
