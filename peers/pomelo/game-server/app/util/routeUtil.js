'use strict';

var dispatcher = require('./dispatcher');

// chat routes a chat request (or RPC) to the chat server owning the
// session's room.
exports.chat = function (session, msg, app, cb) {
  var servers = app.getServersByType('chat');
  if (!servers || servers.length === 0) {
    cb(new Error('no chat server is up'));
    return;
  }
  cb(null, dispatcher.dispatch(session.get('rid'), servers).id);
};
