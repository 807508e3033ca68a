# The provider choices gain openai-responses (the Responses wire for API keys).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_usage_ledger'),
    ]

    operations = [
        migrations.AlterField(
            model_name='credential',
            name='base_url',
            field=models.CharField(blank=True, help_text="Empty: the provider's default (api.anthropic.com, generativelanguage.googleapis.com, api.openai.com/v1 for the Responses API, chatgpt.com/backend-api/codex for Codex accounts). Required for OpenAI-compatible providers, e.g. https://host/v1.", max_length=300),
        ),
        migrations.AlterField(
            model_name='credential',
            name='provider',
            field=models.CharField(choices=[('anthropic', 'Anthropic'), ('gemini', 'Gemini'), ('openai', 'OpenAI-compatible'), ('openai-responses', 'OpenAI Responses API'), ('codex', 'Codex (ChatGPT account)')], default='anthropic', max_length=20),
        ),
        migrations.AlterField(
            model_name='oauthlogin',
            name='provider',
            field=models.CharField(choices=[('anthropic', 'Anthropic'), ('gemini', 'Gemini'), ('openai', 'OpenAI-compatible'), ('openai-responses', 'OpenAI Responses API'), ('codex', 'Codex (ChatGPT account)')], max_length=20),
        ),
    ]
