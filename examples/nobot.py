"""The teaching note's bot. Run it: `hubbub bot examples/nobot.py ws://127.0.0.1:8080/ws`."""

import os

from hubbub.client import Message
from hubbub.client.bot import Bot, Context, MessageContext

bot = Bot(nick="nobot", rooms=["lobby"])


@bot.every(float(os.environ.get("NOBOT_INTERVAL", "10")))
async def ask(ctx: Context) -> None:
    await ctx.broadcast("Ask me a question.")


@bot.on_message(contains="?")
async def answer(message: Message, ctx: MessageContext) -> None:
    await ctx.reply("No.")
