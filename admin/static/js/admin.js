// Admin panel behaviour, kept out of the pages (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  // Copy a secret to the clipboard: <button data-copy="#element-id">
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.querySelector(button.dataset.copy).textContent.trim();
      navigator.clipboard.writeText(text).then(function () {
        Swal.fire({ toast: true, position: "top-end", icon: "success", titleText: button.dataset.copied || "Copied",
                    timer: 1500, showConfirmButton: false });
      });
    });
  });

  // Confirm before a destructive or irreversible form is sent: <form data-confirm="question">.
  // titleText/text, never title/html: the question names an app, and an app's name is whatever an admin typed.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirmed === "yes") { return; }
      event.preventDefault();
      Swal.fire({
        icon: form.dataset.confirmIcon || "warning",
        titleText: form.dataset.confirm,
        text: form.dataset.confirmText || "",
        showCancelButton: true,
        confirmButtonText: form.dataset.confirmYes || "OK",
        cancelButtonText: form.dataset.confirmNo || "Cancel",
        confirmButtonColor: "#dc3545"
      }).then(function (result) {
        if (result.isConfirmed) { form.dataset.confirmed = "yes"; form.submit(); }
      });
    });
  });

  // A secret shown once: ask before leaving the page.
  var once = document.querySelector("[data-shown-once]");
  if (once) {
    document.querySelectorAll("a.leave-secret").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        Swal.fire({
          icon: "warning", titleText: once.dataset.shownOnce, showCancelButton: true,
          confirmButtonText: once.dataset.leaveYes, cancelButtonText: once.dataset.leaveNo
        }).then(function (result) { if (result.isConfirmed) { window.location = link.href; } });
      });
    });
  }
})();
