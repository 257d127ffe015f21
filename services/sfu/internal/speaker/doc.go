// Package speaker turns the audio levels publishers put in their RTP packets (the RFC 6464
// "ssrc-audio-level" header extension, which Chrome sends by default) into the ordered set of
// active speakers of a space.
//
// ParseAudioLevel decodes the extension's one-byte payload. A Detector collects the levels of
// every participant with Observe and, on each Tick (the space owner calls it on a timer, every
// 100–500 ms), decides who is speaking:
//
//   - a tick counts as speech for a participant when at least Options.MinActiveRatio of the
//     packets observed since the previous tick are at or above Options.SilenceLevel (levels are
//     -dBov: 0 is the loudest, 127 silence, so "above" means a smaller number);
//   - a participant starts speaking only after Options.StartAfter of uninterrupted speech ticks
//     (measured from the first packet of the first such tick to the last sound packet),
//     so a cough or a door slam (a few hundred milliseconds) does not make it a speaker;
//   - a speaker stops only after Options.StopAfter without a speech tick (pauses between words
//     do not flip it off);
//   - speakers are ordered loudest first by an exponentially smoothed loudness (time constant
//     Options.Smoothing) that decays while a participant is quiet; an order swap needs the
//     follower to be louder by Options.OrderMargin, so two people talking at once do not make
//     the order flap on every tick;
//   - at most Options.MaxSpeakers are reported.
//
// A Detector is not safe for concurrent use: it belongs to the goroutine that owns the space,
// which calls Observe for the levels its media readers hand it and Tick from its timer.
package speaker
