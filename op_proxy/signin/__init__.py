"""The one sign-in flow under every front door: remember the request → choose an upstream →
upstream login → map claims → finish, handing the result back to the front door that began it."""
