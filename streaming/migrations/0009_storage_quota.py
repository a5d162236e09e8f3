"""Storage quotas and the count of imports: a per-user figure in place of STORAGE_QUOTA_CHARS,
the characters each user stores (made from one sum the first time it is needed, so no row
is written here), and a row per import started, counted against IMPORTS_PER_DAY."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('streaming', '0008_conversation_deleted_at'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Storage',
            fields=[
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to=settings.AUTH_USER_MODEL)),
                ('chars', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name='quota',
            name='storage_chars',
            field=models.PositiveBigIntegerField(blank=True, help_text='Characters of message text (every version, imported ones too) the user may store. Empty: the site default (STORAGE_QUOTA_CHARS). 0: no quota.', null=True, verbose_name='storage quota'),
        ),
        migrations.CreateModel(
            name='Import',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['owner', 'started_at'], name='import_owner_recent')],
            },
        ),
    ]
