# The provider choices gain openai-responses (the Responses wire for API keys).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_oauth_accounts'),
    ]

    operations = [
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
