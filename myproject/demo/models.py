from django.db import models


class Visit(models.Model):
    """One request to the visits page, stored to show that the database works."""

    created_at = models.DateTimeField(auto_now_add=True)
    user_agent = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Visit at {self.created_at:%Y-%m-%d %H:%M:%S}"
