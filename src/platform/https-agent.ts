/**
 * An https.Agent whose connection-pool key is the address alone, for agents whose TLS options are
 * fixed when they are made (requests bring none). Node's own `getName` appends every TLS option to
 * the key, the CA certificate and a client certificate and key included (~3-4 KB of PEM), and the
 * agent rebuilds it and looks it up as a property name several times per request: ~25 % of a
 * keep-alive request's client CPU (docs/PERFORMANCE.md, "perf11"). Used by the appliance's client
 * (src/appliance/client.ts) and the SDK for Node (src/sdk/node.ts).
 */
import type http from 'node:http';
import https from 'node:https';

export class AddressKeyedAgent extends https.Agent {
  override getName(o: http.ClientRequestArgs = {}): string {
    // The parts of Node's key that are not TLS options (lib/_http_agent.js, lib/https.js).
    const servername = (o as { servername?: string }).servername ?? '';
    return `${o.host ?? 'localhost'}:${o.port ?? ''}:${o.localAddress ?? ''}:${o.family ?? ''}:${servername}`;
  }
}
