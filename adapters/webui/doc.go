// Package webui serves Parley's chat page: plain HTML, CSS and JavaScript
// modules embedded in the binary (static/), with nothing fetched from
// anywhere else and nothing to build. GET / is the page; its assets live
// under /web/<version>/, where version is a hash of every embedded file, so
// they are cached for good and a new build is a new URL.
//
// Every answer carries a strict Content-Security-Policy: scripts and styles
// only from this server, no inline script or eval, connections only back
// to this server, and Trusted Types required, so that no string can become
// HTML in the page: the scripts build every message, Markdown included,
// as DOM nodes and text. The page talks to the server through the REST
// API and the WebSocket (docs/protocol.md) as any other client would.
package webui
