// The show-password toggle of the password form: the person can check what they typed (a phone
// keyboard hides typos). A file of its own because pages allow no inline script.
for (const button of document.querySelectorAll("button.reveal[aria-controls]")) {
  const field = document.getElementById(button.getAttribute("aria-controls"));
  if (!field) continue;
  button.hidden = false;
  button.addEventListener("click", () => {
    const reveal = field.type === "password";
    field.type = reveal ? "text" : "password";
    button.setAttribute("aria-pressed", String(reveal));
    button.textContent = reveal ? button.dataset.hide : button.dataset.show;
    field.focus();
  });
}
