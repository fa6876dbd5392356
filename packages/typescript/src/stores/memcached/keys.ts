// Memcached keys: spec/KEYS.md's key when Memcached can hold it, else a hash of it (the same rule in every SDK).
import { hasSpaceOrControl, keyDigest } from '../cas.js'
import { escapeKeyPart, storageKey } from '../redis/keys.js'

/** Memcached's limit on a key, in bytes. */
export const MEMCACHED_MAX_KEY_BYTES = 250

/**
 * A key Memcached accepts: `key` itself when it has at most 250 bytes (UTF-8) and no space or control character;
 * otherwise `<prefix>#` and the SHA-256 of `key`'s UTF-8 bytes in base64url without padding (43 characters). A hashed
 * key cannot meet an unhashed one: after the prefix those always hold a `:`, which base64url does not use.
 */
export function memcachedKey(prefix: string, key: string): string {
  if (!hasSpaceOrControl(key) && (key.length * 3 <= MEMCACHED_MAX_KEY_BYTES || Buffer.byteLength(key, 'utf8') <= MEMCACHED_MAX_KEY_BYTES)) return key
  return `${prefix}#${keyDigest(key)}`
}

/** The key of one identity's state (spec/KEYS.md), made safe. */
export function stateKey(prefix: string, ns: string, id: string): string {
  return memcachedKey(prefix, storageKey(prefix, ns, id))
}

/** The key holding a namespace's generation (`clear(ns)` replaces it): `<prefix><escaped ns>:gen`, made safe. */
export function namespaceKey(prefix: string, ns: string): string {
  return memcachedKey(prefix, `${prefix}${escapeKeyPart(ns)}:gen`)
}

/** The key holding the store's generation (`clear()` replaces it): `<prefix>gen`. */
export function globalKey(prefix: string): string {
  return memcachedKey(prefix, `${prefix}gen`)
}
