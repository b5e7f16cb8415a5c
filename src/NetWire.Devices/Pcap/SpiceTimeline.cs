namespace NetWire.Devices.Pcap;

/// <summary>
/// Joins the conversations of a capture into client migrations (protocol.md §5.1): a source main
/// channel's MIGRATE_BEGIN (or a SWITCH_HOST with none before it) opens one; the client's links to
/// the target are the conversations whose connection id is the source session's id, started after
/// it, on another server; the target's main channel among them carries the client's MIGRATE_END
/// and the target's INIT. After SWITCH_HOST the client's next main link with connection id 0 to
/// the port it names is the new session.
/// </summary>
internal static class SpiceTimeline
{
    public static void Build(SpiceSummary summary)
    {
        foreach (var source in summary.Conversations)
        {
            if (source.ChannelType != SpiceNames.Main || source.SessionId is not { } session)
            {
                continue;
            }

            SpiceMigration? open = null;
            foreach (var message in source.Messages)
            {
                if (message.FromClient)
                {
                    if (open is not null && message.Name is "MIGRATE_CONNECTED" or "MIGRATE_CONNECTED_SEAMLESS" or "MIGRATE_CONNECT_ERROR")
                    {
                        Add(open, message, source, message.Name);
                    }

                    continue;
                }

                switch (message.Name)
                {
                    case "MIGRATE_BEGIN" or "MIGRATE_BEGIN_SEAMLESS":
                        open = Start(summary, source, session, message);
                        break;
                    case "MIGRATE_SWITCH_HOST":
                        open ??= Start(summary, source, session, message);
                        if (open.Events[0].Event != message.Name)
                        {
                            Add(open, message, source, message.Name);
                        }

                        open.Kind = "switch-host";
                        FollowSwitch(summary, open, message);
                        open = null;
                        break;
                    case "MIGRATE_END" when open is not null:
                        Add(open, message, source, message.Name);
                        open.Kind = open.Events.Exists(static e => e.Event == "MIGRATE_CONNECTED_SEAMLESS") ? "seamless" : "semi-seamless";
                        FollowTarget(summary, open, message.TimeNs);
                        open = null;
                        break;
                    case "MIGRATE_CANCEL" when open is not null:
                        Add(open, message, source, message.Name);
                        open.Kind = "cancelled";
                        open = null;
                        break;
                }
            }
        }

        summary.Migrations.Sort(static (a, b) => a.Events[0].TimeNs.CompareTo(b.Events[0].TimeNs));
        foreach (var migration in summary.Migrations)
        {
            migration.Events.Sort(static (a, b) => a.TimeNs.CompareTo(b.TimeNs));
        }
    }

    /// <summary>A migration from its first message, with the client's links to the target that followed it.</summary>
    private static SpiceMigration Start(SpiceSummary summary, SpiceConversation source, uint session, SpiceMessage first)
    {
        var migration = new SpiceMigration { Source = source.Index, SessionId = session, Destination = first.Destination };
        summary.Migrations.Add(migration);
        Add(migration, first, source, first.Name);
        if (first.Name == "MIGRATE_SWITCH_HOST")
        {
            return migration;
        }

        foreach (var link in summary.Conversations)
        {
            if (link.ConnectionId != session || link.FirstNs < first.TimeNs || link.Server == source.Server
                || (first.Destination is { } to && link.ServerPort != to.Port && link.ServerPort != to.SecurePort))
            {
                continue;
            }

            var result = link.Messages.FindLast(static m => m.Name is "link-result" or "link-reply");
            if (result is not null)
            {
                Add(migration, result, link, $"target link {link.Channel}", result.Detail ?? "");
            }

            if (link.ChannelType == SpiceNames.Main && migration.Target is null)
            {
                migration.Target = link.Index;
                foreach (var message in link.Messages)
                {
                    if (message.Name is "MIGRATE_DST_DO_SEAMLESS" or "MIGRATE_DST_SEAMLESS_ACK" or "MIGRATE_DST_SEAMLESS_NACK")
                    {
                        Add(migration, message, link, message.Name);
                    }
                }
            }
        }

        return migration;
    }

    /// <summary>After MIGRATE_END: the client's MIGRATE_END on the target's main channel and the target's INIT.</summary>
    private static void FollowTarget(SpiceSummary summary, SpiceMigration migration, long endNs)
    {
        if (migration.Target is not { } index)
        {
            return;
        }

        var target = summary.Conversations[index - 1];
        var clientEnd = target.Messages.Find(m => m.FromClient && m.Name == "MIGRATE_END" && m.TimeNs >= endNs);
        if (clientEnd is not null)
        {
            Add(migration, clientEnd, target, "client MIGRATE_END");
        }

        var init = target.Messages.Find(m => !m.FromClient && m.Name == "INIT" && m.TimeNs >= endNs);
        if (init is not null)
        {
            Add(migration, init, target, "target INIT");
            Times(migration, endNs, init.TimeNs);
        }
    }

    /// <summary>After SWITCH_HOST: the client's new session, a main link with connection id 0 to the port it names.</summary>
    private static void FollowSwitch(SpiceSummary summary, SpiceMigration migration, SpiceMessage switchHost)
    {
        var port = switchHost.Destination?.Port;
        var fresh = summary.Conversations.Find(c => c.ChannelType == SpiceNames.Main && c.ConnectionId == 0 && c.FirstNs >= switchHost.TimeNs
            && (port is null || c.ServerPort == port));
        if (fresh is null)
        {
            return;
        }

        migration.Target = fresh.Index;
        var result = fresh.Messages.FindLast(static m => m.Name is "link-result" or "link-reply");
        if (result is not null)
        {
            Add(migration, result, fresh, "new session link", result.Detail ?? "");
        }

        var init = fresh.Messages.Find(static m => !m.FromClient && m.Name == "INIT");
        if (init is not null)
        {
            Add(migration, init, fresh, "new session INIT");
            Times(migration, switchHost.TimeNs, init.TimeNs);
        }
    }

    private static void Times(SpiceMigration migration, long switchNs, long initNs)
    {
        migration.SwitchTime = TimeSpan.FromTicks((initNs - switchNs) / 100);
        migration.Duration = TimeSpan.FromTicks((initNs - migration.Events[0].TimeNs) / 100);
    }

    private static void Add(SpiceMigration migration, SpiceMessage message, SpiceConversation conversation, string name, string? detail = null) =>
        migration.Events.Add(new SpiceMigrationEvent(message.TimeNs, name, conversation.Index, message.FromClient ? "C>S" : "S>C",
            detail ?? message.Detail ?? ""));
}
