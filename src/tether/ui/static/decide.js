// Decisions made on a page (promote, roll back, approve, reject): the server makes each for
// this account, as a clone would, and passes it through the same door. Where the decision must
// be signed, the server answers with the exact bytes; this browser's key signs them and the
// decision is asked again, with the same date, until it is made or refused.
import { fromB64, loadKey, publicPem, sign } from "/static/browserkey.js";

const csrf = document.querySelector('meta[name="tether-csrf"]')?.content || "";
const user = document.body.dataset.user || "";
const FLASH = "tether-decided";

function say(form, text, failed) {
  const out = form.querySelector(".decision-status");
  out.textContent = text;
  out.classList.toggle("error", failed);
}

async function ask(project, body) {
  const answer = await fetch(`/api/v1/projects/${encodeURIComponent(project)}/decisions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const doc = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(doc.message || `the server refused (${answer.status})`);
  return doc;
}

// What this browser agrees to sign: the event the form asked for (its kind and what it names)
// or a log's signed head or checkpoint, never whatever else a server might send.
const KINDS = {
  promote: ["label.assign"], rollback: ["label.assign"],
  approve: ["model.approve", "model.transition"], reject: ["model.reject"],
};
const EVENT_TYPES = ["application/vnd.tether.prompts-event+json",
  "application/vnd.tether.registry-event+json"];
const HEAD_TYPE = "application/vnd.tether.log-head+json";

// A log's signed head only after an event of this decision, dated as that event is.
function agreed(message, body, signedEvent) {
  const text = new TextDecoder().decode(message);
  const found = /^DSSEv1 (\d+) ([^ ]+) (\d+) /.exec(text);
  if (!found) return false;
  const type = found[2];
  let doc;
  try { doc = JSON.parse(text.slice(found[0].length)); } catch { return false; }
  if (type === HEAD_TYPE) return signedEvent && doc.log === "registry" && doc.time === body.time;
  if (!EVENT_TYPES.includes(type)) return false;
  if (doc.event && doc.time !== body.time) return false; // dated as the server asked
  const kind = doc.event || doc.kind; // an event's signed document, or (no root) its body
  if (!(KINDS[body.action] || []).includes(kind)) return false;
  const b = doc.event ? doc.body || {} : doc;
  if (kind === "label.assign") { // the label, its next number, the version the page named
    return b.prompt === body.name && b.label === body.label && b.version === body.version &&
      b.n === body.seen + 1 && b.reason === (body.action === "rollback" ? "rollback" : "promote");
  }
  if (b.request !== body.name) return false;
  if (kind !== "model.transition") return true;
  const want = body.expected; // the move the page showed: this version to this stage, numbered
  return b.name === want.model && String(b.version) === want.version && b.stage === want.stage &&
    b.n === Number(want.next);
}

async function decide(form, fields) {
  const body = { action: fields.get("action"), name: fields.get("name") };
  for (const field of ["label", "version", "comment"]) {
    if (fields.get(field)) body[field] = fields.get(field);
  }
  if (fields.get("seen") !== null) body.seen = Number(fields.get("seen"));
  const pair = await loadKey(user).catch(() => null);
  if (pair) Object.assign(body, { public_key: await publicPem(pair), signatures: [] });
  let signedEvent = false;
  for (let asked = 0; asked < 8; asked += 1) {
    const doc = await ask(form.dataset.project, body);
    if (!doc.sign) return doc.decided;
    if (!pair) {
      throw new Error("this decision must be signed, and this browser has no key: make one on " +
        "the signing key page and have an admin trust it");
    }
    const message = fromB64(doc.sign);
    body.time = doc.time;
    if (!agreed(message, { ...body, expected: form.dataset }, signedEvent)) {
      throw new Error("the server asked to sign something else than this decision: refused");
    }
    signedEvent = true;
    say(form, `Signing with this browser's key (${asked + 1})…`, false);
    body.signatures.push(await sign(pair, message));
  }
  throw new Error("the server kept asking for signatures");
}

for (const form of document.querySelectorAll("form[data-decision]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form, event.submitter); // before its button is disabled
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    say(form, "Deciding…", false);
    try {
      sessionStorage.setItem(FLASH, await decide(form, fields));
      window.location.reload();
    } catch (error) {
      say(form, error.message, true);
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

const flash = sessionStorage.getItem(FLASH);
const shown = document.getElementById("decided");
if (flash && shown) {
  sessionStorage.removeItem(FLASH);
  shown.textContent = `Decided: ${flash}`;
  shown.hidden = false;
}
