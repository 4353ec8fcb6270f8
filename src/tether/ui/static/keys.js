// The signing key page: make this browser's key, show its public half and the command an admin
// runs to trust it, or forget it. The private half never leaves WebCrypto.
import { forgetKey, keyId, loadKey, makeKey, publicPem } from "/static/browserkey.js";

const user = document.body.dataset.user || "";
const status = document.getElementById("key-status");
const identity = user.includes("@") ? user : "YOU@EXAMPLE.COM";

async function show() {
  const pair = await loadKey(user);
  document.getElementById("key-none").hidden = Boolean(pair);
  document.getElementById("key-held").hidden = !pair;
  if (!pair) return;
  const id = await keyId(pair);
  const file = `browser-${id.slice(8, 16)}.pub`;
  document.getElementById("key-id").textContent = id;
  document.getElementById("key-pem").value = await publicPem(pair);
  document.getElementById("key-file").textContent = file;
  document.getElementById("trust-root").textContent =
    `tether trust add ${file} --identity ${identity} --role approver`;
  document.getElementById("trust-toml").textContent =
    `tether keys trust ${file} --identity ${identity} --role approver`;
}

document.getElementById("make-key").addEventListener("click", async () => {
  try {
    await makeKey(user);
    status.textContent = "A key was made in this browser; its private half cannot leave it.";
  } catch (error) {
    status.textContent = `This browser cannot make an Ed25519 key (${error.message}): ` +
      "decide with the commands the pages show instead.";
  }
  await show();
});

document.getElementById("forget-key").addEventListener("click", async () => {
  await forgetKey(user);
  status.textContent = "This browser's key is forgotten: an admin should revoke it " +
    "(`tether trust revoke KEYID`).";
  await show();
});

show();
