// OAuth 2.0 Form Post Response Mode: hand the response to the client without a click.
document.getElementById("form-post-response").submit();
