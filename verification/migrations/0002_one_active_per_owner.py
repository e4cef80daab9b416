from django.db import migrations, models
from django.utils import timezone


def cancel_duplicates(apps, schema_editor):
    """Keep each owner's newest active verification; earlier releases could leave two."""
    PhoneVerification = apps.get_model("verification", "PhoneVerification")
    VerificationEvent = apps.get_model("verification", "VerificationEvent")
    active = PhoneVerification.objects.filter(status__in=["sending", "code_sent"])
    seen = set()
    duplicates = []
    for pk, owner in active.order_by("owner", "-created_at").values_list("pk", "owner"):
        if owner in seen:
            duplicates.append(pk)
        seen.add(owner)
    PhoneVerification.objects.filter(pk__in=duplicates).update(
        status="cancelled", finished_at=timezone.now(), resend_at=None
    )
    VerificationEvent.objects.bulk_create(
        VerificationEvent(
            verification_id=pk, kind="cancelled", actor="system", data={"reason": "replaced"}
        )
        for pk in duplicates
    )


class Migration(migrations.Migration):
    dependencies = [("verification", "0001_initial")]

    operations = [
        migrations.RunPython(cancel_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="phoneverification",
            constraint=models.UniqueConstraint(
                condition=models.Q(status__in=["sending", "code_sent"]),
                fields=("owner",),
                name="verification_one_active_per_owner",
            ),
        ),
    ]
