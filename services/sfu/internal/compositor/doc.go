// Package compositor composes a space's tracks into one live picture with mixed sound and
// publishes it over RTMP (a broadcast into a live stream).
//
// # Design
//
// ffmpeg is used as a codec only; composition and mixing are Go.
//
//   - One decoder ffmpeg per video track. Its RTP packets (WriteRTP on the writer AddVideo
//     returns; never blocks, a bounded queue drops when full) are depacketised by pion
//     (VP8 into IVF, H.264 into Annex-B) onto the child's stdin; the child scales to fit a
//     decode box near the tile size (half the picture in each dimension for gallery and
//     crop, the main area for active-speaker), keeping the aspect ratio, and writes
//     yuv4mpegpipe (the size is in its header) on stdout. Layout changes do not restart
//     decoders: the Go side scales (nearest neighbour) from the decoded size to the tile.
//     Options.VideoSize hears each video's shown size (the picture as fitted or cropped into
//     its tile, capped by the decode box) whenever it changes, so the wiring can feed the
//     simulcast layer that size needs; a decoder takes a resolution change at a keyframe and
//     keeps its output size.
//   - One decoder ffmpeg per Opus track: RTP → Ogg (pion) → PCM s16le 48 kHz stereo in 20 ms
//     chunks.
//   - One owner goroutine holds all state (tiles in join order, mute flags, active speaker,
//     screenshare, layout, background, per-track PCM buffers) and takes commands from the
//     exported methods, decoded pictures and PCM from the decoders' reader goroutines.
//     It writes a picture every 1/FPS and a 20 ms audio chunk every 20 ms, counted from the
//     moment the encoder took its first picture, catching up after a stall; more than 2 s
//     behind it skips (Stats.FramesSkipped).
//   - One encoder ffmpeg: raw yuv420p on stdin, PCM on fd 3, libx264 (Options.Preset,
//     -tune zerolatency, a keyframe every 2 s, bitrate capped by -maxrate) and AAC, FLV to
//     Options.RTMPURL. Its input timestamps are frame and sample counts, so the output
//     timeline is continuous for the whole broadcast; the RTMP session is never restarted
//     while tracks come and go. If the encoder exits (e.g. the server refused the key),
//     Done is closed and Err says why; restarting is the caller's decision.
//
// Every child gets Pdeathsig=SIGKILL (it dies with this process) and is reaped by a
// goroutine waiting on it; Close stops the decoders, ends the encoder's inputs so it
// flushes and closes the RTMP session, and returns once all are reaped.
//
// # Layouts
//
//   - gallery: a grid as square as the picture allows (more columns when landscape, more
//     rows when portrait), the last row centred; pictures fitted, the background shows
//     around them.
//   - crop: the same grid, pictures cropped to fill their cells.
//   - active-speaker: SetActiveSpeaker's tile (or the first) cropped into the main area,
//     the others cropped in a strip along the bottom.
//   - a screenshare (SetScreenshare) takes the main area, fitted, in every layout, the
//     others in the strip.
//
// A tile shows a placeholder (a flat tile with the display name in a built-in 5×7 bitmap
// font) while it is muted (SetMuted), has no video (AddTile, RemoveVideo), has not
// decoded a picture yet, or has sent none for 2 s. The background (Options.Background or
// SetBackground; an io.Reader of at most MaxBackgroundBytes, decoded once by ffmpeg and
// scaled to cover) is drawn behind the tiles; fetching it (SSRF rules, size cap) is the
// caller's job. The mix adds every track that has 40 ms buffered in int32 and clips to
// int16; a track more than 200 ms ahead loses its oldest samples, bounding the delay.
//
// # Use
//
//	c, err := compositor.New(compositor.Options{Width: 1280, Height: 720, FPS: 30,
//		Layout: compositor.LayoutGallery, Preset: "veryfast",
//		RTMPURL: "rtmp://127.0.0.1:1935/app/" + streamKey, Logger: log})
//	w, err := c.AddVideo(participantID, displayName, track.Codec().MimeType) // VP8 or H264
//	for { p, _, err := remote.ReadRTP(); …; w.WriteRTP(p) }
//	a, err := c.AddAudio(participantID) // Opus
//	c.SetMuted(participantID, true); c.SetActiveSpeaker(id); c.SetScreenshare(screenID)
//	c.Remove(participantID) // tile and audio
//	<-c.Done(); c.Err()      // the encoder ended on its own
//	c.Close()
package compositor
