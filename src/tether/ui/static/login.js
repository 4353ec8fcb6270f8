// Trade a token for the server's session cookie (HttpOnly, SameSite=Strict): the token goes
// in a POST body once and is never kept in the page or put in a URL.
const form = document.getElementById("login");
const error = document.getElementById("login-error");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const token = form.elements.token.value.trim();
  const answer = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  form.elements.token.value = "";
  if (answer.ok) {
    window.location.assign(form.dataset.next || "/");
  } else {
    const body = await answer.json().catch(() => ({}));
    error.textContent = body.message || `the server refused (${answer.status})`;
    error.hidden = false;
  }
});
