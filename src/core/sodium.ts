/**
 * The single place that loads libsodium (WASM, constant-time, identical in Node and browsers).
 * Top-level await: every core module that needs it can call it synchronously afterwards.
 */
import sodiumModule from 'libsodium-wrappers-sumo';

await sodiumModule.ready;

export const sodium = sodiumModule;
