from django.shortcuts import render

from .models import Visit

RECENT_VISITS_SHOWN = 10


def home(request):
    return render(request, "demo/home.html")


def visits(request):
    """Write a row, then read the latest rows back: the database works both ways."""
    Visit.objects.create(user_agent=request.headers.get("User-Agent", "")[:200])
    context = {
        "visit_count": Visit.objects.count(),
        "recent_visits": Visit.objects.all()[:RECENT_VISITS_SHOWN],
    }
    return render(request, "demo/visits.html", context)
