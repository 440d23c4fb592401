using System.Text;
using PrivateMl.Inference.Tests.Upstream.Http11;
using PrivateMl.Inference.Upstream;
using PrivateMl.Testing;

namespace PrivateMl.Inference.Tests.Upstream;

/// <summary>
/// The socket backend against a scripted peer that writes exactly the bytes a test gives: what goes on the wire, each
/// way a response body can be framed and cut off, interim responses, when a connection is reused or closed (and that
/// a request is never sent twice on a fresh connection), zero-byte reads, and the limits on connections.
/// </summary>
public sealed class Http11SocketBackendTests
{
    private const string ChunkedHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    /// <summary>Http11SocketBackend's single-send size: a request up to it leaves in one send, a larger one in two.</summary>
    private const int SingleSendBytes = 64 * 1024;

    private static readonly byte[] LargerThanSocketBuffers = Enumerable.Repeat((byte)'x', 32 * 1024 * 1024).ToArray();

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ARequest_GoesOnTheWireAsOneHeadWithHostLengthAndType_ThenTheExactBody()
    {
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        using var backend = Backend(server, apiKey: "k-1");
        var body = "{\"prompt\":\"h\u00e9\"}"u8.ToArray();

        await using (await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions?x=1", body), Cancel))
        {
        }

        var request = Assert.Single((await server.ConnectionAsync(1)).Requests);
        Assert.Equal(
            "POST /v1/completions?x=1 HTTP/1.1\r\n" + $"Host: {server.BaseAddress.Authority}\r\n" + "Authorization: Bearer k-1\r\n"
            + "Content-Type: application/json\r\n" + $"Content-Length: {body.Length}\r\n\r\n" + Encoding.Latin1.GetString(body),
            request);
    }

    [Fact]
    public async Task ABodyOver64KiB_ArrivesWhole()
    {
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        using var backend = Backend(server);
        var body = Enumerable.Range(0, 200_000).Select(i => (byte)('a' + (i % 26))).ToArray();

        await using (await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions", body), Cancel))
        {
        }

        var request = Assert.Single((await server.ConnectionAsync(1)).Requests);
        Assert.EndsWith($"Content-Length: 200000\r\n\r\n{Encoding.Latin1.GetString(body)}", request, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SingleSendBytes - 1)]
    [InlineData(SingleSendBytes)]
    [InlineData(SingleSendBytes + 1)]
    public async Task ARequestOfAboutTheSingleSendSize_GoesOnTheWireExactly(int requestBytes)
    {
        // Head and body share one buffer up to the single-send size and go in two sends past it: either way the upstream
        // must read the head, then the body, byte for byte.
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        using var backend = Backend(server);
        var bodyBytes = requestBytes - PostHead(server, "/v1/completions", "application/json", requestBytes).Length;
        var body = Pattern(bodyBytes);
        var head = PostHead(server, "/v1/completions", "application/json", bodyBytes);
        Assert.Equal(requestBytes, head.Length + bodyBytes);

        await using (await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions", body), Cancel))
        {
        }

        Assert.Equal(head + Encoding.Latin1.GetString(body), Assert.Single((await server.ConnectionAsync(1)).Requests));
    }

    [Theory]
    [InlineData(60_000, 10_000, 100)]
    [InlineData(0, 70_000, 0)]
    [InlineData(0, 70_000, SingleSendBytes)]
    public async Task AHeadLongerThanTheSingleSendSize_GoesOnTheWireExactly(int queryChars, int contentTypeChars, int bodyBytes)
    {
        // A long query and a long (valid) content type: the head alone is past the single-send size.
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        using var backend = Backend(server, apiKey: "k-1");
        var path = "/v1/completions?q=" + new string('q', queryChars);
        var contentType = "application/json; p=" + new string('t', contentTypeChars);
        var body = Pattern(bodyBytes);

        await using (await backend.SendAsync(new BackendRequest(HttpMethod.Post, path, body, contentType), Cancel))
        {
        }

        var head = PostHead(server, path, contentType, bodyBytes, "Authorization: Bearer k-1\r\n");
        Assert.True(head.Length > SingleSendBytes);
        Assert.Equal(head + Encoding.Latin1.GetString(body), Assert.Single((await server.ConnectionAsync(1)).Requests));
    }

    [Fact]
    public async Task AGetOrHeadRequest_SendsNoBody_EvenWhenGivenOne()
    {
        // Bytes after a head without Content-Length would be read by the upstream as the next request on the connection.
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            while (await connection.ReadRequestAsync(cancellationToken) is { } request)
            {
                var body = request.StartsWith("HEAD ", StringComparison.Ordinal) ? "" : "ok";
                await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body, cancellationToken);
            }
        });
        using var backend = Backend(server);
        var smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();

        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head, HttpMethod.Post })
        {
            await using var response = await backend.SendAsync(new BackendRequest(method, "/v1/models", smuggled), Cancel);
            await ReadAllAsync(response.Body);
        }

        // The server reads each request before it answers, so all three are in by now.
        var connection = Assert.Single(server.Connections);
        Assert.Equal(["GET /v1/models HTTP/1.1", "HEAD /v1/models HTTP/1.1", "POST /v1/models HTTP/1.1"], connection.Requests.Select(FirstLine));
        Assert.DoesNotContain("Content-Length", connection.Requests[0], StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Content-Type", connection.Requests[1], StringComparison.OrdinalIgnoreCase);
        Assert.EndsWith("\r\n\r\n", connection.Requests[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AChunkedResponseSentOneBytePerSend_IsTheDecodedData()
    {
        const string Chunks = "7\r\ndata: a\r\n2;ext=1\r\n\n\n\r\nC\r\ndata: [DONE]\r\n2\r\n\n\n\r\n0\r\nX-Trailer: t\r\n\r\n";
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteInPiecesAsync(ChunkedHead + Chunks, 1, cancellationToken);
        });
        using var backend = Backend(server);

        await using var response = await backend.SendAsync(Post("/v1/chat/completions"), Cancel);

        Assert.Equal(200, response.StatusCode);
        Assert.True(response.IsEventStream);
        Assert.Equal("data: a\n\ndata: [DONE]\n\n", await ReadAllAsync(response.Body));
    }

    [Fact]
    public async Task ABodyReadOneByteAtATime_OrSynchronously_IsTheSameData()
    {
        await using var server = ScriptedServer.Answering(ChunkedHead + "5\r\nfirst\r\n1\r\n \r\n6\r\nsecond\r\n0\r\n\r\n");
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            var read = new List<byte>();
            var one = new byte[1];
            while (await response.Body.ReadAsync(one, Cancel) == 1)
            {
                read.Add(one[0]);
            }

            Assert.Equal("first second", Encoding.ASCII.GetString([.. read]));
        }

        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            using var reader = new StreamReader(response.Body);
            Assert.Equal("first second", reader.ReadToEnd());
        }

        Assert.Single(server.Connections);
    }

    [Theory]
    [InlineData(BodyFramingCase.Chunked)]
    [InlineData(BodyFramingCase.ContentLength)]
    [InlineData(BodyFramingCase.UntilClose)]
    public async Task ASynchronousRead_IsTheSameBytesAsAnAsynchronousOne(BodyFramingCase framing)
    {
        // Every byte value, CRLFs included, sent a few bytes at a time: some reads find bytes buffered, others wait on the socket.
        var body = Encoding.Latin1.GetString([.. Enumerable.Range(0, 700).Select(i => (byte)(i * 7 % 256))]);
        var response = framing switch
        {
            BodyFramingCase.Chunked => ChunkedHead + string.Concat(body.Chunk(97).Select(c => $"{c.Length:x}\r\n{new string(c)}\r\n")) + "0\r\n\r\n",
            BodyFramingCase.ContentLength => $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\n\r\n{body}",
            _ => "HTTP/1.1 200 OK\r\n\r\n" + body,
        };
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteInPiecesAsync(response, 64, cancellationToken);
            connection.Close();
        });
        using var backend = Backend(server);

        string asynchronous;
        await using (var answer = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            asynchronous = await ReadAllAsync(answer.Body);
        }

        var synchronous = new List<byte>();
        await using (var answer = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            var buffer = new byte[13];
            int read;
            while ((read = answer.Body.Read(buffer.AsSpan())) > 0)
            {
                synchronous.AddRange(buffer.AsSpan(0, read));
            }

            Assert.Equal(0, answer.Body.Read(buffer.AsSpan()));
        }

        Assert.Equal(body, asynchronous);
        Assert.Equal(asynchronous, Encoding.Latin1.GetString([.. synchronous]));
    }

    [Fact]
    public async Task ASynchronousRead_OfBufferedBytes_AllocatesNothing()
    {
        // The whole response comes in one write well under the connection's first buffer, so it is buffered with the head.
        var body = new string('b', 1500);
        await using var server = ScriptedServer.Answering(ChunkedHead + $"{body.Length:x}\r\n{body}\r\n0\r\n\r\n");
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);
        var one = new byte[1];
        Assert.Equal(1, response.Body.Read(one));

        var before = GC.GetAllocatedBytesForCurrentThread();
        var read = 1;
        while (response.Body.Read(one) == 1)
        {
            read++;
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(body.Length, read);
        Assert.True(allocated < 1024, $"{read} one-byte reads allocated {allocated} bytes");
    }

    [Fact]
    public async Task AContentLengthBody_IsReadToItsLength()
    {
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteInPiecesAsync("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"error\":\"none\"}\n", 5, cancellationToken);
        });
        using var backend = Backend(server);

        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        Assert.Equal(404, response.StatusCode);
        Assert.Equal("application/json", response.ContentType);
        Assert.Equal("{\"error\":\"none\"}\n", await ReadAllAsync(response.Body));
    }

    [Fact]
    public async Task ABodyWithoutLength_EndsWhenTheServerCloses_AndItsConnectionIsNotKept()
    {
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteInPiecesAsync("HTTP/1.1 200 OK\r\n\r\nuntil the close", 4, cancellationToken);
            connection.Close();
        });
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("until the close", await ReadAllAsync(response.Body));
            Assert.Equal(0, backend.OpenConnections);
        }

        await using var second = await backend.SendAsync(Post("/v1/completions"), Cancel);
        Assert.Equal("until the close", await ReadAllAsync(second.Body));
        Assert.Equal(2, server.Connections.Count);
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(1)]
    public async Task InterimResponses_AreSkipped(int pieceBytes)
    {
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteInPiecesAsync(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone",
                pieceBytes,
                cancellationToken);
        });
        using var backend = Backend(server);

        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        Assert.Equal(201, response.StatusCode);
        Assert.Equal("done", await ReadAllAsync(response.Body));
    }

    [Fact]
    public async Task A204_HasNoBody_AndItsConnectionCarriesTheNextRequest()
    {
        await using var server = ScriptedServer.AnsweringInTurn("HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext");
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal(204, response.StatusCode);
            Assert.Equal("", await ReadAllAsync(response.Body));
        }

        await using var second = await backend.SendAsync(Post("/v1/completions"), Cancel);
        Assert.Equal("next", await ReadAllAsync(second.Body));
        Assert.Single(server.Connections);
    }

    [Fact]
    public async Task AHeadResponse_HasNoBody_ThoughItHasAContentLength()
    {
        await using var server = ScriptedServer.AnsweringInTurn("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext");
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(new BackendRequest(HttpMethod.Head, "/v1/models", ReadOnlyMemory<byte>.Empty), Cancel))
        {
            Assert.Equal(200, response.StatusCode);
            Assert.Equal("", await ReadAllAsync(response.Body));
        }

        // Had the client waited for 12 body bytes, the next response's bytes would have been taken for them.
        await using var second = await backend.SendAsync(new BackendRequest(HttpMethod.Get, "/v1/models", ReadOnlyMemory<byte>.Empty), Cancel);
        Assert.Equal("next", await ReadAllAsync(second.Body));
        Assert.Single(server.Connections);
    }

    [Fact]
    public async Task AHeadLargerThanTheInitialBuffer_IsRead()
    {
        var padding = new string('p', 40 * 1024);
        await using var server = ScriptedServer.Answering($"HTTP/1.1 200 OK\r\nX-Padding: {padding}\r\nContent-Length: 4\r\n\r\nbody");
        using var backend = Backend(server);

        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        Assert.Equal("body", await ReadAllAsync(response.Body));
    }

    [Theory]
    [InlineData("HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("SSH-2.0-OpenSSH_9.6\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")]
    public async Task AMalformedResponseHead_IsABackendError(string response)
    {
        await using var server = ScriptedServer.Answering(response);
        using var backend = Backend(server);

        await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task AResponseHeadOver64KiB_IsABackendError()
    {
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nX-Padding: " + new string('p', 70 * 1024) + "\r\n\r\n");
        using var backend = Backend(server);

        await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
    }

    [Theory]
    [InlineData("")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Le")]
    public async Task AFreshConnectionClosedBeforeTheHeadEnds_IsABackendError_AndTheRequestIsNotRepeated(string sent)
    {
        await using var server = ScriptedServer.AnsweringOnceThenClosing(sent);
        using var backend = Backend(server);

        await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
        Assert.Single(server.Connections);
        Assert.Equal(0, backend.OpenConnections);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it")]
    [InlineData(ChunkedHead + "64\r\nonly part of it")]
    [InlineData(ChunkedHead + "5\r\nhello\r\n")]
    [InlineData(ChunkedHead + "5\r\nhello\r\n0\r\n")]
    public async Task AConnectionClosedMidBody_FailsTheBodyRead(string sent)
    {
        await using var server = ScriptedServer.AnsweringOnceThenClosing(sent);
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        await Assert.ThrowsAnyAsync<IOException>(() => ReadAllAsync(response.Body));

        // And it stays failed: the caller cannot mistake the cut-off body for a whole one.
        await Assert.ThrowsAnyAsync<IOException>(() => response.Body.ReadAsync(new byte[16], Cancel).AsTask());
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task MalformedChunkedFraming_FailsTheBodyRead()
    {
        await using var server = ScriptedServer.Answering(ChunkedHead + "5\r\nhello\r\nzz\r\n");
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        await Assert.ThrowsAnyAsync<IOException>(() => ReadAllAsync(response.Body));
        Assert.Equal(0, backend.OpenConnections);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")]
    [InlineData(ChunkedHead + "3\r\nfir\r\n2\r\nst\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nfirst")]
    public async Task ResponsesReadToTheEnd_ShareOneConnection(string response)
    {
        await using var server = ScriptedServer.Answering(response);
        using var backend = Backend(server);

        for (var i = 0; i < 3; i++)
        {
            await using var answer = await backend.SendAsync(Post($"/v1/completions/{i}"), Cancel);
            Assert.Equal("first", await ReadAllAsync(answer.Body));
            Assert.Equal(1, backend.OpenConnections);
        }

        var connection = Assert.Single(server.Connections);
        Assert.Equal(3, connection.Requests.Count);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nfirst")]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nfirst")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstextra")]
    [InlineData(ChunkedHead + "5\r\nfirst\r\n0\r\n\r\nextra")]
    public async Task AResponseThatEndsTheConnection_LeavesTheNextRequestToANewOne(string response)
    {
        await using var server = ScriptedServer.Answering(response);
        using var backend = Backend(server);

        for (var i = 0; i < 2; i++)
        {
            await using var answer = await backend.SendAsync(Post("/v1/completions"), Cancel);
            Assert.Equal("first", await ReadAllAsync(answer.Body));
        }

        Assert.Equal(2, server.Connections.Count);
        await server.Connections[0].EndOfStream.WaitAsync(TimeSpan.FromSeconds(30), Cancel);
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task ABodyDisposedBeforeItsEnd_ClosesItsConnection_AndTheNextRequestOpensAnother()
    {
        await using var server = ScriptedServer.Answering(ChunkedHead + "5\r\nfirst\r\n");
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            var buffer = new byte[5];
            await response.Body.ReadExactlyAsync(buffer, Cancel);
            Assert.Equal(1, backend.OpenConnections);
        }

        Assert.Equal(0, backend.OpenConnections);
        var first = await server.ConnectionAsync(1);
        await first.EndOfStream.WaitAsync(TimeSpan.FromSeconds(30), Cancel);

        await using (await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal(2, server.Connections.Count);
        }

        Assert.Single(first.Requests);
    }

    [Fact]
    public async Task AnIdleConnectionTheServerClosed_IsNotUsed_AndTheRequestGoesOnceOnANewOne()
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", cancellationToken);
            if (!closed.Task.IsCompleted)
            {
                // The first connection: the server times it out while it idles in the client's pool.
                await Task.Delay(50, cancellationToken);
                connection.Close();
                closed.SetResult();
            }
        });
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        await closed.Task.WaitAsync(TimeSpan.FromSeconds(30), Cancel);
        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        Assert.Equal(2, server.Connections.Count);
        Assert.All(server.Connections, connection => Assert.Single(connection.Requests));
    }

    [Fact]
    public async Task AReusedConnectionClosedWithoutAnAnswer_IsRetriedOnceOnANewOne()
    {
        var accepted = 0;
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            // The first connection answers one request and drops the second unanswered, as a server closing an idle
            // connection the moment a request arrives would.
            var first = Interlocked.Increment(ref accepted) == 1;
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", cancellationToken);
            if (first)
            {
                await connection.ReadRequestAsync(cancellationToken);
                connection.Close();
            }
        });
        using var backend = Backend(server);
        for (var i = 0; i < 2; i++)
        {
            await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        Assert.Equal(2, server.Connections.Count);
        Assert.Equal(2, server.Connections[0].Requests.Count);
        Assert.Single(server.Connections[1].Requests);
    }

    [Fact]
    public async Task AReusedConnectionClosedWithoutAnAnswer_AndItsRetryToo_IsABackendError()
    {
        var answered = 0;
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            if (Interlocked.Increment(ref answered) == 1)
            {
                await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", cancellationToken);
                await connection.ReadRequestAsync(cancellationToken);
            }

            connection.Close();
        });
        using var backend = Backend(server);
        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
        Assert.Equal(2, server.Connections.Count);
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task AnAnswerSentBeforeTheBodyWasTaken_IsTheResponse_ThoughTheUpstreamCutTheSendShort()
    {
        // The upstream refuses the request from its head and closes with the body unread, which resets the connection
        // while the client is still sending: its answer is already on the client's side and is what the caller gets.
        // (SocketsHttpHandler reports the failed send here instead, so this is not part of the shared contract.)
        const string Refusal = "{\"error\":{\"message\":\"request too large\"}}";
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadHeadAsync(cancellationToken);
            await connection.WriteAsync(
                $"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: {Refusal.Length}\r\n\r\n{Refusal}",
                cancellationToken);
            connection.Close();
        });
        using var backend = Backend(server);

        await using (var response = await backend.SendAsync(Large("/v1/completions"), Cancel))
        {
            Assert.Equal(413, response.StatusCode);
            Assert.Equal("application/json", response.ContentType);
            Assert.Equal(Refusal, await ReadAllAsync(response.Body));
        }

        Assert.StartsWith("POST /v1/completions HTTP/1.1\r\n", Assert.Single(Assert.Single(server.Connections).Requests), StringComparison.Ordinal);
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task AFreshConnectionResetWhileTheBodyIsSent_WithNoAnswer_IsABackendError_AndTheRequestIsNotRepeated()
    {
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadHeadAsync(cancellationToken);
            connection.Reset();
        });
        using var backend = Backend(server);

        var e = await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Large("/v1/completions"), Cancel));
        Assert.Contains("failed while the request was sent", e.Message, StringComparison.Ordinal);
        Assert.Single(Assert.Single(server.Connections).Requests);
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task AnUpstreamThatStopsReadingTheBody_IsABackendError_AfterTheHeadersTimeout()
    {
        var stop = new TaskCompletionSource();
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadHeadAsync(cancellationToken);
            await stop.Task.WaitAsync(cancellationToken);
        });
        using var backend = new Http11SocketBackend(new UpstreamHttpBackendOptions { BaseAddress = server.BaseAddress, ResponseHeadersTimeout = TimeSpan.FromMilliseconds(300) });

        // Bounded here so that a send with no bound fails this test rather than hanging the run.
        var e = await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Large("/v1/completions"), Cancel).WaitAsync(TimeSpan.FromSeconds(30), Cancel));
        stop.SetResult();

        Assert.Contains("took no more of the request within 0.3 s", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task AReusedConnectionResetWhileTheBodyIsSent_WithNoAnswer_IsRetriedOnceOnANewOne()
    {
        var accepted = 0;
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            if (Interlocked.Increment(ref accepted) == 1)
            {
                // The first connection answers a small request, then drops the large one it has only begun to read.
                await connection.ReadRequestAsync(cancellationToken);
                await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", cancellationToken);
                await connection.ReadHeadAsync(cancellationToken);
                connection.Reset();
                return;
            }

            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate", cancellationToken);
        });
        using var backend = Backend(server);
        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        await using (var response = await backend.SendAsync(Large("/v1/completions"), Cancel))
        {
            Assert.Equal("late", await ReadAllAsync(response.Body));
        }

        Assert.Equal(2, server.Connections.Count);
        Assert.Equal(2, server.Connections[0].Requests.Count);
        Assert.Single(server.Connections[1].Requests);
    }

    [Fact]
    public async Task AnAnswerOnAReusedConnectionBeforeTheBodyWasTaken_IsTheResponse_NotARetry_AndItsConnectionIsNotKept()
    {
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", cancellationToken);
            await connection.ReadHeadAsync(cancellationToken);
            await connection.WriteAsync("HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"e\":\"big\"}", cancellationToken);
            connection.Close();
        });
        using var backend = Backend(server);
        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        await using (var response = await backend.SendAsync(Large("/v1/completions"), Cancel))
        {
            Assert.Equal(413, response.StatusCode);
            Assert.Equal("{\"e\":\"big\"}", await ReadAllAsync(response.Body));

            // The rest of the request's body was never sent: the connection cannot carry another request.
            Assert.Equal(0, backend.OpenConnections);
        }

        Assert.Equal(2, Assert.Single(server.Connections).Requests.Count);
    }

    [Fact]
    public async Task DisposingTheBackend_ClosesItsIdleConnections()
    {
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        var backend = Backend(server);
        await using (var response = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(response.Body));
        }

        Assert.Equal(1, backend.OpenConnections);
        backend.Dispose();

        Assert.Equal(0, backend.OpenConnections);
        await (await server.ConnectionAsync(1)).EndOfStream.WaitAsync(TimeSpan.FromSeconds(30), Cancel);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
    }

    [Fact]
    public async Task AResponseOpenWhenTheBackendIsDisposed_IsReadToItsEnd_AndItsConnectionThenClosed()
    {
        await using var server = ScriptedServer.Answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        backend.Dispose();

        Assert.Equal("ok", await ReadAllAsync(response.Body));
        Assert.Equal(0, backend.OpenConnections);
        await (await server.ConnectionAsync(1)).EndOfStream.WaitAsync(TimeSpan.FromSeconds(30), Cancel);
    }

    [Fact]
    public async Task AZeroByteRead_WaitsForTheNextChunk_WithoutTakingIt()
    {
        var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteAsync(ChunkedHead + "5\r\nfirst\r\n", cancellationToken);
            await next.Task.WaitAsync(cancellationToken);
            await connection.WriteAsync("6\r\nsecond\r\n0\r\n\r\n", cancellationToken);
        });
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);
        var buffer = new byte[64];

        Assert.Equal("first", Encoding.ASCII.GetString(buffer, 0, await response.Body.ReadAsync(buffer, Cancel)));

        var waiting = response.Body.ReadAsync(Memory<byte>.Empty, Cancel).AsTask();
        await Task.Delay(200, Cancel);
        Assert.False(waiting.IsCompleted);

        next.SetResult();
        Assert.Equal(0, await waiting.WaitAsync(TimeSpan.FromSeconds(30), Cancel));
        Assert.Equal("second", Encoding.ASCII.GetString(buffer, 0, await response.Body.ReadAsync(buffer, Cancel)));
        Assert.Equal(0, await response.Body.ReadAsync(buffer, Cancel));
        Assert.Single(server.Connections);
    }

    [Fact]
    public async Task AZeroByteRead_OfAnEmptyChunkedBody_EndsIt_AndFreesItsConnection()
    {
        await using var server = ScriptedServer.AnsweringInTurn(ChunkedHead + "0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        // Only framing is buffered, and the upstream keeps the connection open: the zero-byte read must take the
        // framing and end the body rather than wait for bytes that will never come.
        Assert.Equal(0, await response.Body.ReadAsync(Memory<byte>.Empty, Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(30), Cancel));
        Assert.Equal(0, await response.Body.ReadAsync(new byte[5], Cancel));

        // Ended, the body gave its connection back before it was disposed: the next request goes on it.
        await using (var following = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(following.Body));
        }

        Assert.Single(server.Connections);
    }

    [Fact]
    public async Task ASynchronousZeroByteRead_WaitsForData_NotForTheChunkSizeBufferedWithTheHead()
    {
        var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = ScriptedServer.Start(async (connection, cancellationToken) =>
        {
            await connection.ReadRequestAsync(cancellationToken);
            await connection.WriteAsync(ChunkedHead + "5\r\n", cancellationToken);
            await next.Task.WaitAsync(cancellationToken);
            await connection.WriteAsync("first\r\n0\r\n\r\n", cancellationToken);
        });
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        var waiting = Task.Run(() => response.Body.Read([]), Cancel);
        await Task.Delay(200, Cancel);
        Assert.False(waiting.IsCompleted);

        next.SetResult();
        Assert.Equal(0, await waiting.WaitAsync(TimeSpan.FromSeconds(30), Cancel));
        var buffer = new byte[64];
        Assert.Equal("first", Encoding.ASCII.GetString(buffer, 0, response.Body.Read(buffer.AsSpan())));
        Assert.Equal(0, response.Body.Read(buffer.AsSpan()));
    }

    [Fact]
    public async Task ASynchronousZeroByteRead_OfAnEmptyChunkedBody_EndsIt_AndFreesItsConnection()
    {
        await using var server = ScriptedServer.AnsweringInTurn(ChunkedHead + "0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);

        // Only framing is buffered: the read must take it and end the body rather than wait for bytes that will never come.
        Assert.Equal(0, await Task.Run(() => response.Body.Read([]), Cancel).WaitAsync(TimeSpan.FromSeconds(30), Cancel));

        // Ended, the body gave its connection back before it was disposed: the next request goes on it.
        await using (var following = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            Assert.Equal("ok", await ReadAllAsync(following.Body));
        }

        Assert.Single(server.Connections);
    }

    [Fact]
    public async Task CancellingABodyRead_IsAnOperationCanceledException_AndClosesTheConnection()
    {
        await using var server = ScriptedServer.Answering(ChunkedHead + "5\r\nfirst\r\n");
        using var backend = Backend(server);
        await using var response = await backend.SendAsync(Post("/v1/completions"), Cancel);
        var buffer = new byte[64];
        Assert.Equal(5, await response.Body.ReadAsync(buffer, Cancel));

        using var reader = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        var reading = response.Body.ReadAsync(buffer, reader.Token).AsTask();
        await reader.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reading.WaitAsync(TimeSpan.FromSeconds(30), Cancel));
        Assert.Equal(0, backend.OpenConnections);
        await (await server.ConnectionAsync(1)).EndOfStream.WaitAsync(TimeSpan.FromSeconds(30), Cancel);
    }

    [Fact]
    public async Task ARefusedConnection_IsABackendError()
    {
        using var port = new RefusingPort();
        using var backend = new Http11SocketBackend(new UpstreamHttpBackendOptions { BaseAddress = new Uri($"http://127.0.0.1:{port.Port}/") });

        await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
        Assert.Equal(0, backend.OpenConnections);
    }

    [Fact]
    public async Task BeyondMaxConnections_ARequestIsABackendError_UntilOneIsFree()
    {
        await using var server = ScriptedServer.Answering(ChunkedHead + "5\r\nfirst\r\n0\r\n\r\n");
        using var backend = Backend(server, maxConnections: 1);

        await using (var open = await backend.SendAsync(Post("/v1/completions"), Cancel))
        {
            var e = await Assert.ThrowsAsync<BackendUnavailableException>(() => backend.SendAsync(Post("/v1/completions"), Cancel));
            Assert.Contains("1 upstream connections", e.Message, StringComparison.Ordinal);
            Assert.Equal("first", await ReadAllAsync(open.Body));
        }

        await using var next = await backend.SendAsync(Post("/v1/completions"), Cancel);
        Assert.Equal("first", await ReadAllAsync(next.Body));
    }

    [Fact]
    public void AnHttpsBaseAddress_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => new Http11SocketBackend(new UpstreamHttpBackendOptions { BaseAddress = new Uri("https://127.0.0.1:8443/") }));
    }

    [Theory]
    [InlineData("key\r\nX-Injected: 1")]
    [InlineData("key\n")]
    [InlineData("key\r")]
    public void AnApiKeyThatCouldEndItsHeaderLine_IsRefused(string apiKey)
    {
        Assert.Throws<ArgumentException>(() => new Http11SocketBackend(new UpstreamHttpBackendOptions { BaseAddress = new Uri("http://127.0.0.1:8000/"), ApiKey = apiKey }));
    }

    private static Http11SocketBackend Backend(ScriptedServer server, string? apiKey = null, int maxConnections = 16) => new(new UpstreamHttpBackendOptions
    {
        BaseAddress = server.BaseAddress,
        ResponseHeadersTimeout = TimeSpan.FromSeconds(30),
        MaxConnections = maxConnections,
        ApiKey = apiKey,
    });

    private static BackendRequest Post(string path) => new(HttpMethod.Post, path, "{}"u8.ToArray());

    /// <summary>A request whose body is more than both ends' socket buffers hold: sent to a peer that stops reading, it cannot complete.</summary>
    private static BackendRequest Large(string path) => new(HttpMethod.Post, path, LargerThanSocketBuffers);

    /// <summary>The head a POST goes with, as the upstream reads it.</summary>
    private static string PostHead(ScriptedServer server, string path, string contentType, int bodyBytes, string authorization = "") =>
        $"POST {path} HTTP/1.1\r\nHost: {server.BaseAddress.Authority}\r\n{authorization}Content-Type: {contentType}\r\nContent-Length: {bodyBytes}\r\n\r\n";

    /// <summary>Bytes that differ from their neighbours, so a byte sent twice, dropped or moved changes what arrives.</summary>
    private static byte[] Pattern(int length) => [.. Enumerable.Range(0, length).Select(i => (byte)(i % 251))];

    public enum BodyFramingCase
    {
        Chunked,
        ContentLength,
        UntilClose,
    }

    private static string FirstLine(string request) => request[..request.IndexOf("\r\n", StringComparison.Ordinal)];

    private static async Task<string> ReadAllAsync(Stream body)
    {
        using var copy = new MemoryStream();
        await body.CopyToAsync(copy, Cancel).WaitAsync(TimeSpan.FromSeconds(30), Cancel);
        return Encoding.Latin1.GetString(copy.ToArray());
    }
}
