// This browser's signing key: Ed25519, made by WebCrypto with its private half non-extractable,
// kept in IndexedDB per account. The server only ever sees its public half and the signatures
// it makes over the exact bytes a decision asks to sign.
const DB = "tether-keys";
const STORE = "keys";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function inStore(mode, act) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = act(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export const loadKey = async (user) => (await inStore("readonly", (s) => s.get(user))) || null;
export const forgetKey = (user) => inStore("readwrite", (s) => s.delete(user));

export async function makeKey(user) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  await inStore("readwrite", (s) => s.put(pair, user));
  return pair;
}

export function toB64(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text);
}

export const fromB64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

export async function publicPem(pair) {
  const der = await crypto.subtle.exportKey("spki", pair.publicKey);
  const lines = toB64(der).match(/.{1,64}/g).join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}

// Tether's key id: "ed25519:" and the first 32 hex digits of sha256(the raw public key).
export async function keyId(pair) {
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
  return "ed25519:" + [...digest].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 32);
}

export const sign = async (pair, message) =>
  toB64(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, message));
